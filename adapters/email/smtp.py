"""The built-in SMTP server (aiosmtpd), on the controller's own loop.

Answers follow what a sending MTA does with them: 250 accepted (stored), 550 refused
for good (it bounces to the sender with our reason), 451 try again later (our storage
or routing failed: nothing is lost, the MTA retries).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from adapters.email.intake import EmailIntake
from ctl.channels.contract import ChannelError
from ctl.channels.limits import RateLimited

log = logging.getLogger(__name__)


class _Handler:
    def __init__(self, intake: EmailIntake, domains: list[str]) -> None:
        self._intake = intake
        self._domains = [d.lower() for d in domains]

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        domain = address.rpartition("@")[2].lower()
        if self._domains and domain not in self._domains:
            return f"550 5.7.1 we do not accept mail for {domain} (this is not a relay)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            outcome = await self._intake.take(raw, envelope.mail_from or "", "smtp")
        except RateLimited as e:
            return f"451 4.7.1 {e}"
        except ChannelError as e:
            return f"550 5.6.0 {e}"
        except Exception:
            log.exception("email: a received mail could not be stored")
            return "451 4.3.0 temporary failure, try again later"
        return f"250 2.0.0 {outcome}"


class SmtpServer:
    def __init__(self, intake: EmailIntake, host: str, port: int, max_bytes: int,
                 domains: list[str]) -> None:
        self._handler = _Handler(intake, domains)
        self._host, self._port, self._max = host, port, max_bytes
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> Any:
            return SMTP(self._handler, data_size_limit=self._max, enable_SMTPUTF8=True,
                        decode_data=False, ident="ctl")

        self._server = await loop.create_server(protocol, self._host, self._port)
        log.info("email: SMTP server on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
