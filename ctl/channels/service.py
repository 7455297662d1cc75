"""Conversations on digital channels: an inbound message becomes (part of) a contact.

receive(): identify the customer, find the conversation's open contact or open one,
store the message, then route the new contact (the same engine as calls) or push the
message to the agent who holds it. The message is stored before anyone is told, and an
adapter that retries a message (same external id) gets the stored one back.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from functools import partial
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
from ctl.customers.identity import normalize
from ctl.customers.service import CustomerService
from ctl.errors import BadRequest, CtlError, Forbidden, InvalidTransition
from ctl.routing.client import Routing
from ctl.store.db import Database
from ctl.store.models import CHANNELS, IDENTITY_KINDS, Contact, utcnow

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], None]
_ATTEMPTS = 3


class ChannelService:
    def __init__(self, db: Database, customers: CustomerService, contacts: ContactService,
                 routing: Routing, outbound: Outbound, attachments: AttachmentStore,
                 settings: ChannelSettings, publish: Publish, node: str | None = None,
                 limiter: Limiter | None = None, region: str = "US") -> None:
        self._db = db
        self._customers = customers
        self._contacts = contacts
        self._routing = routing
        self.outbound = outbound
        self.attachments = attachments
        self.settings = settings
        self._publish = publish
        self._node = node
        self._region = region  # reads national phone numbers, as calls do
        self._limiter = limiter or Limiter(settings.rate_per_minute, settings.rate_burst)
        # One conversation's messages are taken one at a time: two first messages of a
        # thread arriving together must open one contact, not two.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()
        # Told of every new message in a thread (thread, text, contact id): a customer
        # answering a ticket's notification is a reply on that ticket.
        self.on_thread_reply: Callable[[str, str, str], Awaitable[None]] | None = None
        # Told of every new inbound message once it is stored and routed; a listener
        # must return at once (it queues work, e.g. intent and sentiment), never raise.
        self.listeners: list[Callable[[Inbound, Received], None]] = []

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
        kind, raw = msg.identity
        norm = normalize(kind, raw, self._region) if kind in IDENTITY_KINDS else None
        if norm is None:
            raise Rejected(f"{msg.channel}: cannot identify the sender: not a usable "
                           f"{kind}: {raw!r}")
        stored = await self.attachments.accept(msg.attachments) if msg.attachments else []
        row = {"channel": msg.channel, "direction": "in", "address": msg.address,
               "subject": msg.subject, "text": msg.text, "external_id": store.ext(msg.external_id),
               "thread": store.thread_key(msg.thread), "status": "received",
               "attachments": stored, "meta": dict(msg.meta),
               "created_at": utcnow()}  # here, so the agent's push shows the stored time
        taken = await self._take((kind, norm), msg, row, self._usable(msg.also))
        if taken.outcome == "duplicate":
            return Received(taken.message_id, taken.contact_id, taken.customer_id, taken.seq,
                            False, True)
        got = Received(taken.message_id, taken.contact_id, taken.customer_id, taken.seq,
                       taken.outcome == "open", False)
        full = {**row, "contact_id": got.contact_id, "customer_id": got.customer_id}
        await self._after(got.contact_id, taken.state, taken.agent_id, msg, got, full)
        for listener in self.listeners:
            try:
                listener(msg, got)
            except Exception:  # stored and routed: a listener's failure is its own
                log.exception("a listener failed on message %s", got.message_id)
        if taken.thread and self.on_thread_reply is not None:
            try:
                await self.on_thread_reply(taken.thread, msg.text, got.contact_id)
            except Exception:  # the message is stored and routed whatever this does
                log.exception("a reply in thread %s could not be filed", taken.thread)
        return got

    def _usable(self, given: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        """The extra identities of a message, normalised; unusable ones left out."""
        out = []
        for kind, raw in given:
            value = normalize(kind, raw, self._region) if kind in IDENTITY_KINDS else None
            if value is not None:
                out.append((kind, value))
        return tuple(out)

    async def _take(self, identity: tuple[str, str], msg: Inbound, row: dict[str, Any],
                    also: tuple[tuple[str, str], ...] = ()) -> store.Taken:
        """Store the message (one transaction when its contact is open; a new contact
        first otherwise). PostgreSQL may refuse a concurrent identity: retried."""
        for attempt in range(_ATTEMPTS):
            try:
                taken = await self._db.write(
                    lambda s: store.take(s, identity, msg.name, msg.refs, row, also))
                if taken.outcome != "open":
                    return taken
                contact = await self._contacts.open(
                    msg.channel, customer_id=taken.customer_id, external_ref=taken.thread,
                    node=self._node, attributes={"address": msg.address, "subject": msg.subject})
                message_id, seq = await self._db.write(partial(
                    store.insert_message, row={**row, "contact_id": contact.id,
                                               "customer_id": taken.customer_id,
                                               "thread": taken.thread}))
                return store.Taken("open", taken.customer_id, taken.thread, message_id, seq,
                                   contact.id, contact.state, None)
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _after(self, contact_id: str, state: str, agent_id: str | None, msg: Inbound,
                     got: Received, row: dict[str, Any]) -> None:
        """Route a contact that waits for it (a crash may have left one `new`), or hand
        the message to the agent who holds the conversation."""
        self.notify(contact_id, {"type": "new", "seq": got.seq})  # e.g. the visitor's other tab
        if state == ContactState.NEW.value:
            await self._route(contact_id, msg.queue or self.settings.queue_for(msg.channel))
        elif state == ContactState.ASSIGNED.value and agent_id:
            self._publish(f"agent:{agent_id}", {
                "type": "message", "contact": contact_id,
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
                    attachments: tuple[Attachment, ...] = (),
                    subject: str | None = None) -> dict[str, Any]:
        """An agent's reply in a contact they hold, sent on the contact's channel.
        `subject` (email) replaces the default "Re: <the customer's subject>"."""
        contact = await self._held(who, contact_id)
        to = (contact.attributes or {}).get("address")
        if not to:
            raise InvalidTransition(f"contact {contact_id} has no customer address to reply to",
                                    hint="only contacts that came in on a digital channel do",
                                    reason="no_reply_address")
        subject = " ".join((subject or "").split())[:500]  # one header line
        if not subject:
            subject = (contact.attributes or {}).get("subject")
            if subject and not subject.lower().startswith("re:"):
                subject = f"Re: {subject}"
        for a in attachments:  # every file checked before any is stored or anything sent
            self.attachments.check(a)
        stored = [await self.attachments.save(a) for a in attachments]
        message_id, seq = await self.outbound.deliver(
            contact.channel, to, text, subject=subject, thread=contact.external_ref,
            customer_id=contact.customer_id, contact_id=contact.id, author=who.agent_id,
            attachments=attachments, stored=stored)
        return {"id": message_id, "seq": seq}

    async def conversations(self, who: Principal, after: dict[str, int] | None = None
                            ) -> list[dict[str, Any]]:
        """The contacts the agent holds now, on every channel (the desk's tabs); with
        `after`, each one's messages after the seq it gives (0 when it has none)."""
        async with self._db.session(readonly=True) as s:
            return await store.held(s, who.agent_id, after)

    async def disposition(self, who: Principal, contact_id: str, disposition: str,
                          notes: str) -> dict[str, str]:
        """The agent's wrap-up of a contact they hold: a code and notes, kept in its
        history (the latest one counts)."""
        await self._held(who, contact_id)
        disposition, notes = disposition.strip(), notes.strip()
        if len(disposition) > 64:
            raise BadRequest("disposition: at most 64 characters",
                             reason="disposition_too_long", params={"max": 64})
        if len(notes) > 4000:
            raise BadRequest("notes: at most 4,000 characters", reason="notes_too_long",
                             params={"max": 4000})
        if not (disposition or notes):
            raise BadRequest("disposition or notes: give at least one",
                             reason="disposition_empty")
        data = {"disposition": disposition, "notes": notes, "agent": who.agent_id}
        await self._contacts.log(contact_id, "disposition", data)
        return data

    async def link_identity(self, who: Principal, contact_id: str, kind: str, value: str
                            ) -> dict[str, Any]:
        """The agent holding the contact verified an identity the customer gave (their
        phone number in a WeChat chat...): the customer has it from now on, so a call
        from that number is theirs. Logged in the contact's history."""
        contact = await self._held(who, contact_id)
        if contact.customer_id is None:
            raise InvalidTransition(f"contact {contact_id} has no customer to link to")
        linked = await self._customers.link(contact.customer_id, kind, value)
        await self._contacts.log(contact_id, "identity_linked", {
            "kind": linked["kind"], "value": linked["value"], "agent": who.agent_id})
        return linked

    async def _held(self, who: Principal, contact_id: str) -> Contact:
        contact = await self._contacts.get(contact_id)
        if contact.agent_id != who.agent_id:
            raise Forbidden(f"contact {contact_id} is not yours", reason="contact_not_yours")
        if contact.state not in store.HELD_STATES:
            raise InvalidTransition(f"contact {contact_id} is {contact.state}: this is for a "
                                    "contact you hold", reason="contact_not_held",
                                    params={"state": str(contact.state)})
        return contact

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
    return {**{k: row.get(k) for k in keep}, "at": row["created_at"].isoformat()}
