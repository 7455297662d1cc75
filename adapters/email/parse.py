"""MIME in, a plain view of the mail out: who, what, which thread, what is attached.

Parsing never fails: malformed structure keeps what can be read and lists the defects,
so a badly built mail still reaches an agent rather than bouncing back to a customer.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

from adapters.email.charsets import decode, header
from ctl.channels.contract import Attachment

_ID = re.compile(r"<([^<>\s]+)>")


@dataclass
class Mail:
    message_id: str | None
    sender: str  # the bare address of From (Reply-To when given)
    name: str | None
    subject: str
    text: str
    in_reply_to: str | None
    references: tuple[str, ...]
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # charset guesses, MIME defects
    msg: Message | None = None

    @property
    def thread(self) -> str | None:
        """The conversation's root: the first reference, else what it answers, else itself."""
        if self.references:
            return self.references[0]
        return self.in_reply_to or self.message_id

    @property
    def refs(self) -> tuple[str, ...]:
        ids = [*self.references, *([self.in_reply_to] if self.in_reply_to else [])]
        return tuple(dict.fromkeys(ids))


def ids(raw: object) -> list[str]:
    """Message-IDs in a header, without angle brackets ("<a@b> <c@d>" -> ["a@b", "c@d"])."""
    text = str(raw or "")
    found = _ID.findall(text)
    if not found and text.strip() and " " not in text.strip():
        found = [text.strip().strip("<>")]  # a bare id some clients write
    return found


def parse(raw: bytes) -> Mail:
    # compat32: the most forgiving parser; headers stay raw for charset-aware decoding.
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    problems = [type(d).__name__ for d in msg.defects]
    reply_to = parseaddr(header(msg.get("Reply-To")))[1]
    name, sender = parseaddr(header(msg.get("From")))
    mid = ids(msg.get("Message-ID"))
    refs = [i for i in ids(msg.get("References"))]
    irt = ids(msg.get("In-Reply-To"))
    text, attachments = _body(msg, problems)
    return Mail(message_id=mid[0] if mid else None, sender=reply_to or sender,
                name=name or None, subject=header(msg.get("Subject")), text=text,
                in_reply_to=irt[0] if irt else None, references=tuple(refs),
                attachments=attachments, problems=problems, msg=msg)


def recipients(msg: Message) -> list[str]:
    return [a for _, a in getaddresses([str(v) for v in msg.get_all("To", [])])]


def _body(msg: Message, problems: list[str]) -> tuple[str, list[Attachment]]:
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for part in leaves(msg):
        problems += [type(d).__name__ for d in part.defects]
        kind = part.get_content_type()
        if kind.startswith("multipart/"):  # its boundary never came: read it as text
            kind = "text/plain"
        filename = part.get_filename()
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        if kind == "message/delivery-status":
            continue  # a bounce report: read by the bounce check, not an attachment
        if filename or disposition == "attachment" or not kind.startswith("text/"):
            attachments.append(_attachment(part, filename, kind))
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = str(part.get_payload()).encode("utf-8", "replace")
        text, problem = decode(data, part.get_content_charset())
        if problem:
            problems.append(f"{kind}: {problem}")
        (html if kind == "text/html" else plain).append(text)
    body = "\n".join(plain) if plain else "\n".join(_strip_html(h) for h in html)
    return body.replace("\r\n", "\n").strip(), attachments


def leaves(msg: Message) -> list[Message]:
    """The parts that carry content, in order; an attached mail (message/*) is one part,
    not walked into: its text is not the sender's."""
    if msg.get_content_maintype() == "message" or not msg.is_multipart():
        return [msg]
    out: list[Message] = []
    payload = msg.get_payload()
    for sub in payload if isinstance(payload, list) else []:
        if isinstance(sub, Message):
            out += leaves(sub)
    return out


def _attachment(part: Message, filename: str | None, kind: str) -> Attachment:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):  # message/rfc822 parts parse into messages
        payload = part.get_payload()
        first = payload[0] if isinstance(payload, list) and payload else None
        data = first.as_bytes() if isinstance(first, Message) else b""
    name = header(filename) if filename else f"part.{kind.split('/')[-1]}"
    return Attachment(name, kind, data)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li", "tr"):
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def _strip_html(text: str) -> str:
    parser = _Text()
    parser.feed(text)
    lines = (" ".join(line.split()) for line in "".join(parser.out).splitlines())
    return "\n".join(line for line in lines if line)
