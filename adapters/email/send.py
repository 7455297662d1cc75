"""Outbound mail through an SMTP relay, threaded with Message-ID/In-Reply-To/References."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from ctl.channels.contract import ChannelError, Outgoing
from ctl.channels.settings import EmailSettings
from ctl.customers.identity import normalize_email

_MAX_REFS = 20  # RFC 5322 3.6.4: keep the root and the latest when a thread grows long


class SmtpSender:
    def __init__(self, settings: EmailSettings) -> None:
        self._s = settings
        self._domain = settings.address.rpartition("@")[2] or "localhost"

    def build(self, out: Outgoing) -> EmailMessage:
        to = normalize_email(out.to)
        if to is None:
            raise ChannelError(f"email: {out.to!r} is not an email address")
        msg = EmailMessage()
        msg["From"] = self._s.address
        msg["To"] = to
        msg["Subject"] = out.subject or "(no subject)"
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = f"<{out.message_id}@{self._domain}>"
        refs = list(out.refs)
        if len(refs) > _MAX_REFS:
            refs = [refs[0], *refs[-(_MAX_REFS - 1):]]
        if refs:
            msg["In-Reply-To"] = f"<{refs[-1]}>"
            msg["References"] = " ".join(f"<{r}>" for r in refs)
        msg.set_content(out.text)
        for att in out.attachments:
            main, _, sub = att.content_type.partition("/")
            msg.add_attachment(att.data, maintype=main or "application",
                               subtype=sub or "octet-stream", filename=att.name)
        return msg

    async def send(self, out: Outgoing) -> str | None:
        msg = self.build(out)
        await asyncio.to_thread(self._deliver, msg)
        return str(msg["Message-ID"]).strip("<>")

    def _deliver(self, msg: EmailMessage) -> None:
        s = self._s
        try:
            with smtplib.SMTP(s.relay_host, s.relay_port, timeout=20) as smtp:
                if s.relay_starttls:
                    smtp.starttls()
                if s.relay_username:
                    smtp.login(s.relay_username, s.relay_password or "")
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as e:
            (code, why), = e.recipients.values()
            raise ChannelError(f"email: relay refused {msg['To']}: {code} "
                               f"{why.decode('utf-8', 'replace')}") from None
        except (smtplib.SMTPException, OSError) as e:
            raise ChannelError(f"email: relay {s.relay_host}:{s.relay_port}: {e}") from None
