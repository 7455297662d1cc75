"""The outbound registry: any service sends a message to a customer on any channel.

Adapters register a `Sender` per channel. Every message is stored (status "queued")
before the channel is asked, then marked "sent" with the channel's id or "failed" with
the reason, so a message is never sent without a trace; delivery receipts arrive later
through `status()`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ctl.channels import store
from ctl.channels.contract import (
    STATUSES,
    Attachment,
    ChannelError,
    DeliveryFailed,
    Outgoing,
    Sender,
    UnknownChannel,
)
from ctl.channels.limits import Limiter
from ctl.errors import BadRequest
from ctl.store.db import Database

log = logging.getLogger(__name__)


class Outbound:
    def __init__(self, db: Database, limiter: Limiter, timeout: float = 30.0) -> None:
        self._db = db
        self._limiter = limiter
        self._timeout = timeout
        self._senders: dict[str, Sender] = {}

    def register(self, channel: str, sender: Sender) -> None:
        self._senders[channel] = sender

    def unregister(self, channel: str) -> None:
        self._senders.pop(channel, None)

    def channels(self) -> list[str]:
        return sorted(self._senders)

    async def send(self, channel: str, to: str, text: str, *, subject: str | None = None,
                   thread: str | None = None, customer_id: str | None = None,
                   contact_id: str | None = None) -> str:
        """Send `text` to `to` on `channel`; the stored message's id. `thread` groups
        messages of one conversation (a ticket id...): the channel threads them (email
        In-Reply-To/References); `contact_id` puts the message into that conversation
        (a chat). Raises a ChannelError subclass naming the problem."""
        message_id, _ = await self.deliver(channel, to, text, subject=subject, thread=thread,
                                           customer_id=customer_id, contact_id=contact_id)
        return message_id

    async def deliver(self, channel: str, to: str, text: str, *, subject: str | None = None,
                      thread: str | None = None, customer_id: str | None = None,
                      contact_id: str | None = None, author: str | None = None,
                      attachments: tuple[Attachment, ...] = (),
                      stored: list[dict[str, Any]] | None = None) -> tuple[str, int]:
        """send() with what a reply in a contact adds; (message id, seq)."""
        sender = self._sender(channel)
        if not isinstance(to, str) or not to.strip():
            raise BadRequest(f"{channel}: no recipient to send to")
        if not isinstance(text, str) or not (text.strip() or attachments):
            raise BadRequest(f"{channel}: the message to {to} is empty",
                             reason="message_empty")
        self._limiter.take(f"out:{channel}:{to}", f"{channel} recipient {to}")
        thread = store.thread_key(thread)
        async with self._db.session(readonly=True) as s:
            refs = await store.thread_refs(s, channel, thread, contact_id)
        row = {"contact_id": contact_id, "customer_id": customer_id, "channel": channel,
               "direction": "out", "address": to, "author": author, "subject": subject,
               "text": text, "thread": thread, "status": "queued",
               "attachments": stored or []}
        message_id, seq = await self._db.write(lambda s: store.insert_message(s, row))
        out = Outgoing(message_id, channel, to, text, subject, thread, tuple(refs),
                       attachments, contact_id, seq)
        try:
            external = await asyncio.wait_for(sender.send(out), self._timeout)
        except Exception as e:  # whatever the adapter raised, the message is marked failed
            if not isinstance(e, ChannelError | TimeoutError | OSError):
                log.exception("%s sender failed", channel)
            reason = str(e) or type(e).__name__
            await self._db.write(lambda s: store.mark(s, message_id, "failed", reason[:500]))
            raise DeliveryFailed(f"{channel} could not send to {to}: {reason}") from None
        await self._db.write(lambda s: store.mark(s, message_id, "sent", None, external))
        return message_id, seq

    async def status(self, channel: str, external_id: str, status: str,
                     reason: str | None = None) -> tuple[str, str | None] | None:
        """A delivery receipt: (message id, contact id) updated, None if unknown."""
        if status not in STATUSES:
            raise BadRequest(f"unknown message status {status!r}",
                             hint="one of " + ", ".join(sorted(STATUSES)))
        why = reason[:500] if reason else None
        return await self._db.write(
            lambda s: store.set_status(s, channel, external_id, status, why))

    def _sender(self, channel: str) -> Sender:
        sender = self._senders.get(channel)
        if sender is None:
            known = ", ".join(self.channels()) or "none (no adapter is configured)"
            raise UnknownChannel(f"no adapter sends on channel {channel!r}",
                                 hint=f"channels that send: {known}")
        return sender
