"""Conversations on digital channels: an inbound message becomes (part of) a contact.

receive(): identify the customer, find the conversation's open contact or open one,
store the message, then route the new contact (the same engine as calls) or push the
message to the agent who holds it. The message is stored before anyone is told, and an
adapter that retries a message (same external id) gets the stored one back.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from ctl.agents.auth import Principal
from ctl.channels import store
from ctl.channels.attachments import AttachmentStore
from ctl.channels.contract import Attachment, Inbound, Received, Rejected, UnknownChannel
from ctl.channels.limits import Limiter
from ctl.channels.outbound import Outbound
from ctl.channels.settings import ChannelSettings
from ctl.contacts.service import ContactService
from ctl.contacts.states import ContactState
from ctl.customers.service import CustomerService
from ctl.errors import CtlError, Forbidden, InvalidTransition
from ctl.routing.client import Routing
from ctl.store.db import Database
from ctl.store.models import CHANNELS, Contact

Publish = Callable[[str, dict[str, Any]], None]


class ChannelService:
    def __init__(self, db: Database, customers: CustomerService, contacts: ContactService,
                 routing: Routing, outbound: Outbound, attachments: AttachmentStore,
                 settings: ChannelSettings, publish: Publish, node: str | None = None,
                 limiter: Limiter | None = None) -> None:
        self._db = db
        self._customers = customers
        self._contacts = contacts
        self._routing = routing
        self.outbound = outbound
        self.attachments = attachments
        self.settings = settings
        self._publish = publish
        self._node = node
        self._limiter = limiter or Limiter(settings.rate_per_minute, settings.rate_burst)
        # One conversation's messages are taken one at a time: two first messages of a
        # thread arriving together must open one contact, not two.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()

    async def receive(self, msg: Inbound) -> Received:
        if msg.channel not in CHANNELS:
            raise UnknownChannel(f"unknown channel {msg.channel!r}")
        self._limiter.take(f"in:{msg.channel}:{msg.address}",
                           f"{msg.channel} sender {msg.address}")
        lock_key = f"{msg.channel}\0{msg.thread or msg.address}"
        lock = self._locks.get(lock_key)
        if lock is None:
            lock = self._locks[lock_key] = asyncio.Lock()
        async with lock:
            return await self._receive(msg)

    async def _receive(self, msg: Inbound) -> Received:
        if (dup := await self._duplicate(msg)) is not None:
            return dup
        kind, raw = msg.identity
        try:
            customer_id = await self._customers.identify(kind, raw, msg.name)
        except ValueError as e:
            raise Rejected(f"{msg.channel}: cannot identify the sender: {e}") from None
        async with self._db.session(readonly=True) as s:
            contact, thread = await store.open_contact(
                s, msg.channel, store.thread_key(msg.thread), msg.refs)
        if thread is None:
            thread = store.thread_key(msg.thread)
        stored = await self.attachments.accept(msg.attachments)
        opened = contact is None
        if contact is None:
            contact = await self._contacts.open(
                msg.channel, customer_id=customer_id, external_ref=thread, node=self._node,
                attributes={"address": msg.address, "subject": msg.subject})
        row = {"contact_id": contact.id, "customer_id": customer_id, "channel": msg.channel,
               "direction": "in", "address": msg.address, "subject": msg.subject,
               "text": msg.text, "external_id": store.ext(msg.external_id), "thread": thread,
               "status": "received", "attachments": stored, "meta": dict(msg.meta)}
        try:
            message_id, seq = await self._db.write(lambda s: store.insert_message(s, row))
        except IntegrityError:
            if (dup := await self._duplicate(msg)) is not None:
                return dup  # another node stored the same message meanwhile
            message_id, seq = await self._db.write(lambda s: store.insert_message(s, row))
        got = Received(message_id, contact.id, customer_id, seq, opened, False)
        await self._after(contact, msg, got, row)
        return got

    async def _duplicate(self, msg: Inbound) -> Received | None:
        if msg.external_id is None:
            return None
        async with self._db.session(readonly=True) as s:
            seen = await store.by_external(s, msg.channel, msg.external_id)
        if seen is None or seen.contact_id is None:
            return None
        return Received(seen.id, seen.contact_id, seen.customer_id or "", seen.seq, False, True)

    async def _after(self, contact: Contact, msg: Inbound, got: Received,
                     row: dict[str, Any]) -> None:
        """Route a contact that waits for it (a crash may have left one `new`), or hand
        the message to the agent who holds the conversation."""
        self.notify(contact.id, {"type": "new"})  # e.g. the visitor's other tab
        if contact.state == ContactState.NEW.value:
            await self._route(contact.id, msg.queue or self.settings.queue_for(msg.channel))
        elif contact.state == ContactState.ASSIGNED.value and contact.agent_id:
            self._publish(f"agent:{contact.agent_id}", {
                "type": "message", "contact": contact.id,
                "message": {**_public(row), "id": got.message_id, "seq": got.seq}})

    async def _route(self, contact_id: str, queue: str) -> None:
        try:
            await self._routing.enqueue(contact_id, queue)
        except CtlError as e:
            if e.status < 500:  # refused (unknown queue...): the contact will never be served
                await self._contacts.finish(contact_id, ContactState.CLOSED, "not_routed")
            raise

    # --- agents -------------------------------------------------------------------------

    async def reply(self, who: Principal, contact_id: str, text: str,
                    attachments: tuple[Attachment, ...] = ()) -> dict[str, Any]:
        """An agent's reply in a contact they hold, sent on the contact's channel."""
        contact = await self._contacts.get(contact_id)
        if contact.agent_id != who.agent_id:
            raise Forbidden(f"contact {contact_id} is not yours")
        if contact.state not in ("assigned", "wrapup"):
            raise InvalidTransition(f"contact {contact_id} is {contact.state}: replies go "
                                    "to a contact you hold")
        to = (contact.attributes or {}).get("address")
        if not to:
            raise InvalidTransition(f"contact {contact_id} has no customer address to reply to",
                                    hint="only contacts that came in on a digital channel do")
        subject = (contact.attributes or {}).get("subject")
        if subject and not subject.lower().startswith("re:"):
            subject = f"Re: {subject}"
        stored = [await self.attachments.save(a) for a in attachments]
        message_id, seq = await self.outbound.deliver(
            contact.channel, to, text, subject=subject, thread=contact.external_ref,
            customer_id=contact.customer_id, contact_id=contact.id, author=who.agent_id,
            attachments=attachments, stored=stored)
        return {"id": message_id, "seq": seq}

    async def messages(self, who: Principal, contact_id: str, after: int = 0
                       ) -> list[dict[str, Any]]:
        contact = await self._contacts.get(contact_id)
        _may_read(who, contact)
        async with self._db.session(readonly=True) as s:
            return [store.view(m) for m in await store.of_contact(s, contact_id, after)]

    async def history(self, who: Principal, contact_id: str) -> list[dict[str, Any]]:
        """Every message of the contact's customer, on every channel, oldest first."""
        contact = await self._contacts.get(contact_id)
        _may_read(who, contact)
        if contact.customer_id is None:
            return await self.messages(who, contact_id)
        async with self._db.session(readonly=True) as s:
            return [store.view(m) for m in await store.of_customer(s, contact.customer_id)]

    async def contact(self, contact_id: str) -> Contact:
        return await self._contacts.get(contact_id)

    async def conversation(self, contact_id: str, after: int = 0) -> list[dict[str, Any]]:
        """A contact's messages after `after` (adapters replaying to their customer)."""
        async with self._db.session(readonly=True) as s:
            return [store.view(m) for m in await store.of_contact(s, contact_id, after)]

    async def typing(self, who: Principal, contact_id: str, on: bool) -> None:
        """The agent types (or stopped): the customer's channel shows it, if it can."""
        contact = await self._contacts.get(contact_id)
        if contact.agent_id != who.agent_id:
            raise Forbidden(f"contact {contact_id} is not yours")
        self.notify(contact_id, {"type": "typing", "on": bool(on)})

    def notify(self, contact_id: str, message: dict[str, Any]) -> None:
        """Tell whoever follows the contact on its channel (a chat visitor's socket)."""
        self._publish(f"contact:{contact_id}", message)

    def tell_agent(self, agent_id: str, message: dict[str, Any]) -> None:
        self._publish(f"agent:{agent_id}", message)

    async def on_routing(self, events: list[Any]) -> None:
        """Routing listener (on the leader): a contact's state changed -> its followers
        re-read it. Offers are not state a customer sees."""
        for e in events:
            contact_id = getattr(e, "contact_id", None)
            if contact_id and type(e).__name__ not in ("Offered", "OfferEnded"):
                self.notify(contact_id, {"type": "state"})

    async def status(self, channel: str, external_id: str, status: str,
                     reason: str | None = None) -> bool:
        """A delivery receipt from an adapter; the agent holding the contact hears of it."""
        hit = await self.outbound.status(channel, external_id, status, reason)
        if hit is None:
            return False
        message_id, contact_id = hit
        if contact_id is not None:
            contact = await self._contacts.get(contact_id)
            if contact.agent_id:
                self._publish(f"agent:{contact.agent_id}", {
                    "type": "message_status", "contact": contact_id, "message": message_id,
                    "status": status, "reason": reason})
        return True


def _may_read(who: Principal, contact: Contact) -> None:
    if who.role == "agent" and contact.agent_id != who.agent_id:
        raise Forbidden(f"contact {contact.id} is not yours")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("contact_id", "customer_id", "channel", "direction", "address", "subject", "text",
            "status", "attachments")
    return {k: row.get(k) for k in keep}
