"""One received mail, from SMTP or IMAP, handed to the channel contract (or not)."""

from __future__ import annotations

import hashlib
import logging

from adapters.email.classify import automatic, bounce
from adapters.email.parse import parse
from ctl.channels.contract import Inbound, Rejected
from ctl.channels.service import ChannelService
from ctl.customers.identity import normalize_email

log = logging.getLogger(__name__)


class EmailIntake:
    def __init__(self, channels: ChannelService, own_address: str) -> None:
        self._channels = channels
        self._own = normalize_email(own_address)

    async def take(self, raw: bytes, envelope_from: str | None = None,
                   source: str = "smtp") -> str:
        """Handle one mail; what became of it ("contact ID", "bounce", "auto-reply").
        Raises Rejected (naming the problem) for mail that cannot be a contact."""
        mail = parse(raw)
        report = bounce(mail, envelope_from)
        if report is not None:
            known = report.original_id is not None and await self._channels.status(
                "email", report.original_id, "failed", report.reason)
            log.info("email: bounce for %s (%s)%s", report.original_id, report.reason,
                     "" if known else ": not a message of ours")
            return "bounce"
        why = automatic(mail)
        if why is not None:
            log.info("email: automatic reply from %s dropped (%s)", mail.sender, why)
            return "auto-reply"
        sender = normalize_email(mail.sender)
        if sender is None:
            raise Rejected(f"email: no usable sender address (From: {mail.sender!r})")
        if sender == self._own:
            log.warning("email: mail from our own address dropped (a loop?)")
            return "loop"
        # No Message-ID (rare, but seen): the content itself identifies a redelivery.
        mid = mail.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
        got = await self._channels.receive(Inbound(
            channel="email", identity=("email", sender), address=sender, text=mail.text,
            name=mail.name, subject=mail.subject or None, external_id=mid,
            thread=mail.thread or mid, refs=mail.refs, attachments=tuple(mail.attachments),
            meta={"source": source, **({"problems": mail.problems} if mail.problems else {})}))
        return f"contact {got.contact_id}" + (" (duplicate)" if got.duplicate else "")
