"""Messages in the database: the SQL of the channels service, nothing else.

Writes are synchronous work for `Database.write()` (one transaction in one hop).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, insert, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ctl.customers.service import FIND_CUSTOMER, create_in, identify_in
from ctl.store.models import Base, Contact, ContactEvent, Customer, Message, new_id, utcnow

# Contacts a new message joins; wrap-up and final ones are over: the customer writing
# again starts a new contact (routing's sticky step prefers the same agent).
OPEN_STATES = ("new", "queued", "offered", "assigned")
_MESSAGES = Base.metadata.tables["messages"]
_CONTACTS = Base.metadata.tables["contacts"]
_NEXT_SEQ = (select(func.coalesce(func.max(_MESSAGES.c.seq), 0) + 1)
             .where(_MESSAGES.c.contact_id == bindparam("of_contact")).scalar_subquery())
_SEQ_UNIQUE = "uq_messages_contact_id_seq"
_INSERT_NEXT = (insert(_MESSAGES).values(seq=_NEXT_SEQ).returning(_MESSAGES.c.seq))
_INSERT_NEXT_PG = (pg_insert(_MESSAGES).values(seq=_NEXT_SEQ)
                   .on_conflict_do_nothing(index_elements=["contact_id", "seq"])
                   .returning(_MESSAGES.c.seq))
_DUPLICATE = (select(_MESSAGES.c.id, _MESSAGES.c.contact_id, _MESSAGES.c.customer_id,
                     _MESSAGES.c.seq, _MESSAGES.c.thread)
              .where(_MESSAGES.c.channel == bindparam("channel"),
                     _MESSAGES.c.external_id == bindparam("external_id")))
# What a new message needs of its conversation's open contact (no ORM object: this is
# the hot path of every inbound message).
# The states are written into the SQL: a list of values would be bound anew, expanded
# into one parameter each, at every execution.
_OPEN = (select(_CONTACTS.c.id, _CONTACTS.c.state, _CONTACTS.c.agent_id,
                _CONTACTS.c.external_ref)
         .where(_CONTACTS.c.state.in_([literal_column(f"'{v}'") for v in OPEN_STATES])))
_OPEN_IN_THREAD = (_OPEN.where(_CONTACTS.c.channel == bindparam("channel"),
                               _CONTACTS.c.external_ref == bindparam("thread"))
                   .order_by(_CONTACTS.c.created_at.desc()).limit(1))
# A message in a known conversation asks three things before it is stored: whether it
# was stored before, whose it is, and the conversation's open contact. One statement
# asks them all (on PostgreSQL each statement is a round trip of the writer's
# connection, which was most of a chat message's time at 500 messages/s).
_PROBE = (select(
    _DUPLICATE.with_only_columns(_MESSAGES.c.id).where(_MESSAGES.c.contact_id.is_not(None))
    .limit(1).scalar_subquery().label("dup"),
    FIND_CUSTOMER.limit(1).scalar_subquery().label("customer"),
    *_OPEN.selected_columns)
    .select_from(select(literal_column("1").label("one")).subquery().outerjoin(
        _CONTACTS, _CONTACTS.c.id == _OPEN_IN_THREAD.with_only_columns(_CONTACTS.c.id)
        .scalar_subquery())))
HELD_STATES = ("assigned", "wrapup")  # an agent works on it (replies are allowed)


def key(value: str | None, size: int) -> str | None:
    """`value` as stored in a column of `size`: long ids (some Message-IDs) hashed."""
    if value is None or len(value) <= size:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def ext(value: str | None) -> str | None:
    return key(value, 500)


def thread_key(value: str | None) -> str | None:
    return key(value, 128)


def insert_message(s: Session, row: dict[str, Any]) -> tuple[str, int]:
    """Store one message; its seq follows the contact's last one. Returns (id, seq)."""
    contact_id = row.get("contact_id")
    full = {"id": new_id(), "author": None, "subject": None, "external_id": None,
            "thread": None, "status_reason": None, "attachments": [], "meta": {},
            "customer_id": None, "created_at": utcnow(), **row}
    full.pop("seq", None)
    if contact_id is None:
        s.execute(insert(_MESSAGES), {**full, "seq": 0})
        return full["id"], 0
    # The seq in the INSERT itself: one statement, not a SELECT and an INSERT.
    params = {**full, "of_contact": contact_id}
    if s.get_bind().dialect.name == "sqlite":  # one writer at a time: no race
        return full["id"], int(s.connection().execute(_INSERT_NEXT, params).scalar_one())
    # PostgreSQL runs two nodes' INSERTs of one conversation side by side and both can
    # take the same next seq: the second then inserts nothing (ON CONFLICT: no SAVEPOINT
    # needed, the transaction goes on) and takes the one after. Each miss means another
    # writer committed one: a conversation would need 100 writers at once to exhaust it.
    for _ in range(100):
        seq = s.connection().execute(_INSERT_NEXT_PG, params).scalar()
        if seq is not None:
            return full["id"], int(seq)
    raise IntegrityError(str(_INSERT_NEXT_PG), params, Exception(
        f"{_SEQ_UNIQUE}: no free seq after 100 tries"))


def set_status(s: Session, channel: str, external_id: str, status: str,
               reason: str | None) -> tuple[str, str | None] | None:
    """Update an outbound message's status by its channel id: (message id, contact id)."""
    row = s.execute(select(Message.id, Message.contact_id).where(
        Message.channel == channel, Message.external_id == ext(external_id))).first()
    if row is None:
        return None
    s.execute(update(_MESSAGES).where(_MESSAGES.c.id == row.id).values(
        status=status, status_reason=reason))
    return row.id, row.contact_id


def mark(s: Session, message_id: str, status: str, reason: str | None = None,
         external_id: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "status_reason": reason}
    if external_id is not None:
        values["external_id"] = ext(external_id)
    s.execute(update(_MESSAGES).where(_MESSAGES.c.id == message_id).values(**values))


def open_contact(s: Session, channel: str, thread: str | None,
                 refs: tuple[str, ...]) -> tuple[OpenContact | None, str | None]:
    """The open contact of this conversation (id, state, agent_id, external_ref), and
    the conversation's thread key.

    A message answering a known message (refs) belongs to that message's conversation,
    whatever thread key its sender put; else the thread key decides.
    """
    if refs:
        stmt = (select(Message.contact_id, Message.thread)
                .where(Message.channel == channel,
                       Message.external_id.in_([ext(r) for r in refs]))
                .order_by(Message.contact_id.is_(None), Message.created_at.desc()).limit(1))
        hit = s.execute(stmt).first()
        if hit is not None:
            # A known message outside any contact (a ticket's notification) lends its
            # thread: the answer becomes a contact of that thread.
            found = s.execute(select(*_OPEN.selected_columns)
                              .where(_CONTACTS.c.id == hit.contact_id)).first() \
                if hit.contact_id else None
            contact = OpenContact(*found) if found is not None else None
            thread = hit.thread or (contact.external_ref if contact else None)
            if contact is not None and contact.state in OPEN_STATES:
                return contact, thread
            if thread is not None:
                return _open_in_thread(s, channel, thread), thread
    if thread is None:
        return None, None
    return _open_in_thread(s, channel, thread), thread


def _open_in_thread(s: Session, channel: str, thread: str) -> OpenContact | None:
    found = s.connection().execute(_OPEN_IN_THREAD,
                                   {"channel": channel, "thread": thread}).first()
    return OpenContact(*found) if found is not None else None


class OpenContact(NamedTuple):
    id: str
    state: str
    agent_id: str | None
    external_ref: str | None


@dataclass(frozen=True)
class Taken:
    """What take() did: "duplicate" (stored before), "stored", or "open" (no open
    contact: the caller opens one, then stores the message)."""

    outcome: str
    customer_id: str
    thread: str | None
    message_id: str = ""
    seq: int = 0
    contact_id: str = ""
    state: str = ""
    agent_id: str | None = None


def take(s: Session, identity: tuple[str, str], name: str | None, refs: tuple[str, ...],
         row: dict[str, Any], also: tuple[tuple[str, str], ...] = ()) -> Taken:
    """An inbound message in one transaction (one hop on SQLite): deduplicate, identify
    the customer (`identity` normalised), find the conversation, store the message."""
    channel, external_id = row["channel"], row.get("external_id")
    if not (refs or also) and row.get("thread") is not None:
        probe = s.connection().execute(_PROBE, {
            "channel": channel, "external_id": external_id, "kind": identity[0],
            "value": identity[1], "thread": row["thread"]}).one()
        if probe.dup is None:
            customer_id = probe.customer or create_in(s, *identity, name)
            if probe.id is None:
                return Taken("open", customer_id, row["thread"])
            message_id, seq = insert_message(s, {**row, "contact_id": probe.id,
                                                 "customer_id": customer_id})
            return Taken("stored", customer_id, row["thread"], message_id, seq, probe.id,
                         probe.state, probe.agent_id)
    if external_id is not None:
        dup = s.connection().execute(_DUPLICATE, {"channel": channel,
                                                  "external_id": external_id}).first()
        if dup is not None and dup.contact_id is not None:
            return Taken("duplicate", dup.customer_id or "", dup.thread, dup.id, dup.seq,
                         dup.contact_id)
    customer_id = identify_in(s, *identity, name, also)
    contact, thread = open_contact(s, channel, row.get("thread"), refs)
    thread = thread or row.get("thread")
    if contact is None:
        return Taken("open", customer_id, thread)
    message_id, seq = insert_message(s, {**row, "contact_id": contact.id,
                                         "customer_id": customer_id, "thread": thread})
    return Taken("stored", customer_id, thread, message_id, seq, contact.id, contact.state,
                 contact.agent_id)


async def thread_refs(s: AsyncSession, channel: str, thread: str | None,
                      contact_id: str | None) -> list[str]:
    """External ids of a conversation's messages, oldest first (for threading headers)."""
    stmt = select(Message.external_id).where(Message.channel == channel,
                                             Message.external_id.is_not(None))
    if contact_id is not None:
        stmt = stmt.where(Message.contact_id == contact_id)
    elif thread is not None:
        stmt = stmt.where(Message.thread == thread)
    else:
        return []
    return [r for r in await s.scalars(stmt.order_by(Message.created_at, Message.seq)) if r]


async def of_contact(s: AsyncSession, contact_id: str, after: int = 0) -> list[Message]:
    stmt = (select(Message).where(Message.contact_id == contact_id, Message.seq > after)
            .order_by(Message.seq))
    return list(await s.scalars(stmt))


async def of_customer(s: AsyncSession, customer_id: str, limit: int = 500) -> list[Message]:
    stmt = (select(Message).where(Message.customer_id == customer_id)
            .order_by(Message.created_at.desc()).limit(limit))
    return list(reversed(list(await s.scalars(stmt))))


async def held(s: AsyncSession, agent_id: str, after: dict[str, int] | None = None
               ) -> list[dict[str, Any]]:
    """The contacts `agent_id` holds (every channel, voice included), oldest first, with
    their customer's name, last message seq and latest disposition: the desk's tabs.
    With `after` ({contact id: seq}, 0 for a contact not in it) each carries its
    messages after that seq too: one request for the whole panel."""
    rows = (await s.execute(
        select(Contact, Customer.display_name)
        .outerjoin(Customer, Customer.id == Contact.customer_id)
        .where(Contact.agent_id == agent_id, Contact.state.in_(HELD_STATES))
        .order_by(Contact.created_at))).all()
    ids = [r[0].id for r in rows]
    last: dict[str, int] = {}
    notes: dict[str, dict[str, Any]] = {}
    found: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        last = dict((await s.execute(  # type: ignore[arg-type]
            select(Message.contact_id, func.max(Message.seq))
            .where(Message.contact_id.in_(ids)).group_by(Message.contact_id))).all())
        events = await s.scalars(
            select(ContactEvent).where(ContactEvent.kind == "disposition",
                                       ContactEvent.contact_id.in_(ids))
            .order_by(ContactEvent.id))
        notes = {e.contact_id: dict(e.data or {}) for e in events}  # the latest wins
    if ids and after is not None:
        wanted = [i for i in ids if last.get(i, 0) > after.get(i, 0)]
        if wanted:
            for m in await s.scalars(select(Message).where(
                    Message.contact_id.in_(wanted),
                    Message.seq > min(after.get(i, 0) for i in wanted))
                    .order_by(Message.contact_id, Message.seq)):
                if m.contact_id is not None and m.seq > after.get(m.contact_id, 0):
                    found[m.contact_id].append(view(m))
    out = []
    for contact, name in rows:
        attrs = contact.attributes or {}
        entry = {
            "contact_id": contact.id, "channel": contact.channel, "state": contact.state,
            "customer_id": contact.customer_id,
            "customer_name": name or attrs.get("caller_name") or None,
            "address": attrs.get("address") or attrs.get("caller"),
            "subject": attrs.get("subject"), "last_seq": last.get(contact.id, 0),
            "opened_at": contact.created_at.isoformat(),
            "disposition": notes.get(contact.id, {})}
        if after is not None:
            entry["messages"] = found[contact.id]
        out.append(entry)
    return out


def view(m: Message) -> dict[str, Any]:
    return {"id": m.id, "contact_id": m.contact_id, "customer_id": m.customer_id,
            "channel": m.channel, "direction": m.direction, "seq": m.seq,
            "address": m.address, "author": m.author, "subject": m.subject, "text": m.text,
            "status": m.status, "status_reason": m.status_reason,
            "attachments": list(m.attachments or []), "at": m.created_at.isoformat()}
