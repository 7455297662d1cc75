"""A real SMTP server (aiosmtpd) for tests, and an email Sender for the outbound registry
that delivers over SMTP (the contract of ctl/channels/contract.py)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage, Message
from typing import Any

from aiosmtpd.controller import Controller

from ctl.channels.contract import Outgoing
from tests.integration.harness import free_port


class Inbox:
    """Messages the SMTP server accepted, handed to the test's loop as they arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.messages: asyncio.Queue[Message] = asyncio.Queue()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self._loop.call_soon_threadsafe(self.messages.put_nowait, msg)
        return "250 OK"

    async def next(self, timeout: float = 10.0) -> Message:
        return await asyncio.wait_for(self.messages.get(), timeout)


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox(asyncio.get_running_loop())
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class SmtpSender:
    def __init__(self, port: int, sender: str = "support@ctl.example") -> None:
        self._port = port
        self._from = sender

    async def send(self, out: Outgoing) -> str:
        msg = EmailMessage()
        msg["From"], msg["To"] = self._from, out.to
        msg["Subject"] = out.subject or ""
        msg["Message-ID"] = f"<{out.message_id}@ctl.example>"
        if out.refs:
            msg["In-Reply-To"], msg["References"] = out.refs[-1], " ".join(out.refs)
        msg.set_content(out.text)
        await asyncio.to_thread(self._deliver, msg)
        return str(msg["Message-ID"])

    def _deliver(self, msg: EmailMessage) -> None:
        with smtplib.SMTP("127.0.0.1", self._port, timeout=10) as smtp:
            smtp.send_message(msg)
