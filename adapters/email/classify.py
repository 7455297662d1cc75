"""Mail no person wrote: delivery reports (bounces) and automatic replies.

Neither becomes a contact: a bounce marks the message it reports on as failed, an
automatic reply (out of office...) is logged and dropped; routing either to an agent, or
answering it, would start mail loops between robots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from adapters.email.charsets import header
from adapters.email.parse import Mail, ids, leaves

_ROBOTS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|bounce[s]?)@", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|delivery (status )?notification|returned mail|failure notice|"
    r"delivery failure|mail delivery failed|退信|未能送达|無法傳遞)", re.I)
_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)? ?(reply|response)|auto:|out of (the )?office|abwesenheit|"
    r"自动回复|自動回覆|自動回复|休假)", re.I)


@dataclass(frozen=True)
class Bounce:
    original_id: str | None  # the Message-ID of the mail that could not be delivered
    recipient: str | None
    reason: str


def bounce(mail: Mail, envelope_from: str | None = None) -> Bounce | None:
    msg = mail.msg
    if msg is None:
        return None
    report = msg.get_content_type() == "multipart/report" and \
        str(msg.get_param("report-type") or "").lower() == "delivery-status"
    robot = bool(_ROBOTS.match(mail.sender)) or envelope_from == ""
    if not report and not (robot and _BOUNCE_SUBJECT.search(mail.subject)):
        return None
    recipient, status, diagnostic = _delivery_status(msg)
    reason = " ".join(x for x in (status, diagnostic) if x) or mail.subject or "bounced"
    return Bounce(_original_id(msg, mail.text), recipient, f"bounced: {reason}"[:500])


def automatic(mail: Mail) -> str | None:
    """Why `mail` was written by a robot (RFC 3834 and the usual vendor headers), or None."""
    msg = mail.msg
    if msg is None:
        return None
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        if msg.get(name) is not None:
            return name
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "junk", "auto_reply"):
        return f"Precedence: {precedence}"
    if _AUTO_SUBJECT.search(mail.subject):
        return f"subject {mail.subject!r}"
    return None


def _delivery_status(msg: Message) -> tuple[str | None, str | None, str | None]:
    for part in leaves(msg):
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, Message):
                continue
            if block.get("Final-Recipient") or block.get("Status"):
                recipient = str(block.get("Final-Recipient", "")).split(";")[-1].strip()
                return (recipient or None, _str(block.get("Status")),
                        _str(block.get("Diagnostic-Code")))
    return None, None, None


def _original_id(msg: Message, text: str) -> str | None:
    for part in leaves(msg):
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            first = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(first, Message) and (found := ids(first.get("Message-ID"))):
                return found[0]
        elif kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            hit = re.search(rb"^Message-ID:\s*<([^>]+)>",
                            raw if isinstance(raw, bytes) else b"", re.I | re.M)
            if hit:
                return hit.group(1).decode("utf-8", "replace")
    match = re.search(r"Message-ID:\s*<([^>]+)>", text, re.I)
    return match.group(1) if match else None


def _str(value: object) -> str | None:
    text = header(value)
    return text or None
