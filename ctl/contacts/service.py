"""Contacts in the database: open, move through the state machine, log interactions.

Every state change and its event are written in one transaction. A contact row carries
a version (optimistic locking): when two nodes move the same contact at once, the loser
re-reads it and re-validates its transition against the winner's state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ctl.contacts.states import FINAL, ContactState, check
from ctl.customers.service import identify_in
from ctl.errors import InvalidTransition, NotFound
from ctl.store.db import Database
from ctl.store.models import CHANNELS, Base, Contact, ContactEvent, new_id, utcnow

_FINAL = [s.value for s in FINAL]
_ATTEMPTS = 3
_CONTACTS, _EVENTS = Base.metadata.tables["contacts"], Base.metadata.tables["contact_events"]
# A call's open and close are Core statements on the session's connection, built once:
# through the ORM (unit of work, identity map, its compile and result layers) they cost
# about twice as much CPU, on every call.
_NEW_CONTACT, _NEW_EVENTS = insert(_CONTACTS), insert(_EVENTS)
_ONE = select(_CONTACTS).where(_CONTACTS.c.id == bindparam("cid"))
_SET = update(_CONTACTS).where(_CONTACTS.c.id == bindparam("cid"),
                               _CONTACTS.c.version == bindparam("was"))

# An interaction event recorded now and written later (kind, data, when): see logged().
Logged = tuple[str, dict[str, Any], datetime]
# A state change: (to, reason, data).
Move = tuple[ContactState, str, dict[str, Any] | None]


def logged(kind: str, data: dict[str, Any]) -> Logged:
    """An interaction event (not a state change) as of now, for log_many() or finish()."""
    if kind == "state":
        raise ValueError("state events are written by transition()")
    return kind, dict(data), utcnow()


class ContactService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(
        self,
        channel: str,
        *,
        customer_id: str | None = None,
        identity: tuple[str, str] | None = None,
        external_ref: str | None = None,
        node: str | None = None,
        attributes: dict[str, Any] | None = None,
        reason: str = "created",
        then: Move | None = None,
    ) -> Contact:
        """A new contact, in one transaction with what comes with it.

        `identity` (kind, normalised value) identifies its customer, created on first
        sight. `then` (state, reason, data) is its first move, e.g. into the IVR: the row
        is stored in that state and both state events (new, then `then`) are written.
        """
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; known: {', '.join(sorted(CHANNELS))}")
        if then is not None:
            check(ContactState.NEW, then[0])
        for attempt in range(_ATTEMPTS):
            now = utcnow()
            row: dict[str, Any] = {
                "id": new_id(), "channel": channel, "customer_id": customer_id,
                "external_ref": external_ref, "node": node, "state": ContactState.NEW.value,
                "priority": 0, "attributes": dict(attributes or {}), "criteria": [],
                "created_at": now, "updated_at": now, "version": 1,
            }
            events = [_row(row["id"], "state", None, ContactState.NEW, reason, None, now)]
            if then is not None:
                to, why, data = then
                events.append(_row(row["id"], "state", ContactState.NEW, to, why, data, now))
                row["state"] = ContactState(to).value

            def work(s: Session, row: dict[str, Any] = row,
                     events: list[dict[str, Any]] = events) -> None:
                if identity is not None:
                    row["customer_id"] = identify_in(s, *identity)
                # Plain INSERTs, in this order: the contact, then its events.
                conn = s.connection()
                conn.execute(_NEW_CONTACT, row)
                conn.execute(_NEW_EVENTS, events)

            try:
                await self._db.write(work)
            except IntegrityError:
                if identity is None or attempt == _ATTEMPTS - 1:
                    raise
                continue  # a concurrent identify() created the customer first: use theirs
            return Contact(**row)
        raise AssertionError("unreachable")  # pragma: no cover

    async def transition(
        self, contact_id: str, to: ContactState | str, reason: str,
        data: dict[str, Any] | None = None,
    ) -> Contact:
        return await self._move(contact_id, to, reason, data)

    async def finish(
        self, contact_id: str, to: ContactState | str, reason: str,
        data: dict[str, Any] | None = None, *, logged: Sequence[Logged] = (),
    ) -> Contact:
        """Move to the final state `to`, or do nothing if the contact is already final.
        `logged` (interaction events held back by the caller) are written first, in the
        same transaction, even when the contact was already final."""
        if to not in FINAL:
            raise ValueError(f"finish() needs a final state, not {to!r}")
        final, held = ContactState(to), [_logged_row(contact_id, e) for e in logged]

        def work(s: Session) -> Contact:
            conn = s.connection()
            found = conn.execute(_ONE, {"cid": contact_id}).mappings().first()
            if found is None:
                raise NotFound(f"no contact {contact_id}")
            row, events = dict(found), held  # held lines first: ids keep the events' order
            if row["state"] not in FINAL:
                check(row["state"], final)
                now = utcnow()
                changes = {"state": final.value, "updated_at": now, "closed_at": now,
                           "close_reason": reason, "version": row["version"] + 1}
                if conn.execute(_SET, {"cid": contact_id, "was": row["version"],
                                       **changes}).rowcount != 1:
                    raise StaleDataError(f"contact {contact_id} changed meanwhile")
                events = [*held, _row(contact_id, "state", row["state"], final, reason,
                                      data, now)]
                row.update(changes)
            if events:
                conn.execute(_NEW_EVENTS, events)
            return Contact(**row)

        return await self._retrying(work, contact_id, to)

    async def log(self, contact_id: str, kind: str, data: dict[str, Any]) -> None:
        await self.log_many(contact_id, [logged(kind, data)])

    async def log_many(self, contact_id: str, events: Sequence[Logged]) -> None:
        """Interaction events (see logged()) in one transaction, in their order."""
        if not events:
            return
        rows = [_logged_row(contact_id, e) for e in events]

        def work(s: Session) -> None:
            _load_in(s, contact_id)
            s.execute(_NEW_EVENTS, rows)

        await self._db.write(work)

    async def log_each(self, events: Sequence[tuple[str, Logged]]) -> dict[str, str | None]:
        """Events of several contacts (contact id, event) in one transaction; those of
        contacts that no longer exist are left out. Returns each written contact's agent
        (who holds it now, or None)."""
        def work(s: Session) -> dict[str, str | None]:
            ids = {contact_id for contact_id, _ in events}
            holders: dict[str, str | None] = {
                r.id: r.agent_id for r in s.execute(
                    select(_CONTACTS.c.id, _CONTACTS.c.agent_id)
                    .where(_CONTACTS.c.id.in_(ids)))}
            rows = [_logged_row(c, e) for c, e in events if c in holders]
            if rows:
                s.execute(_NEW_EVENTS, rows)
            return holders

        return await self._db.write(work) if events else {}

    async def get(self, contact_id: str) -> Contact:
        async with self._db.session(readonly=True) as s:
            return await _load(s, contact_id)

    async def by_external_ref(self, channel: str, ref: str) -> Contact | None:
        """The contact for a channel-side id (an Asterisk channel...): unfinished, newest first."""
        final_last = case((Contact.state.in_(_FINAL), 1), else_=0)
        stmt = (
            select(Contact)
            .where(Contact.channel == channel, Contact.external_ref == ref)
            .order_by(final_last, Contact.created_at.desc())
            .limit(1)
        )
        async with self._db.session(readonly=True) as s:
            return (await s.scalars(stmt)).first()

    async def events(self, contact_id: str) -> list[ContactEvent]:
        stmt = select(ContactEvent).where(ContactEvent.contact_id == contact_id)
        async with self._db.session(readonly=True) as s:
            return list(await s.scalars(stmt.order_by(ContactEvent.id)))

    async def unfinished(self, channel: str | None = None) -> list[Contact]:
        stmt = select(Contact).where(Contact.state.not_in(_FINAL))
        if channel is not None:
            stmt = stmt.where(Contact.channel == channel)
        async with self._db.session(readonly=True) as s:
            return list(await s.scalars(stmt.order_by(Contact.created_at)))

    async def _move(
        self, contact_id: str, to: ContactState | str, reason: str,
        data: dict[str, Any] | None,
    ) -> Contact:
        def work(s: Session) -> Contact:
            contact = _load_in(s, contact_id)
            check(contact.state, to)
            _apply(s, contact, ContactState(to), reason, data)
            return contact

        return await self._retrying(work, contact_id, to)

    async def _retrying(self, work: Callable[[Session], Contact], contact_id: str,
                        to: ContactState | str) -> Contact:
        for _ in range(_ATTEMPTS):
            try:
                return await self._db.write(work)
            except StaleDataError:
                continue  # another writer won: re-read and re-validate against its state
        raise InvalidTransition(
            f"contact {contact_id} kept changing while moving it to {to}", hint="retry later"
        )


async def _load(s: AsyncSession, contact_id: str) -> Contact:
    contact = await s.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    return contact


def _load_in(s: Session, contact_id: str) -> Contact:
    contact = s.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    return contact


def move_in(s: Session | AsyncSession, contact: Contact, to: ContactState, reason: str,
            data: dict[str, Any] | None) -> None:
    """Move a contact loaded in `s` (the caller owns the transaction and its retries)."""
    check(contact.state, to)
    _apply(s, contact, to, reason, data)


def event_row(contact_id: str, kind: str, data: dict[str, Any]) -> ContactEvent:
    """An interaction event (not a state change) for the caller's transaction."""
    return _event(contact_id, kind, None, None, None, data)


def _apply(
    s: Session | AsyncSession, contact: Contact, to: ContactState, reason: str,
    data: dict[str, Any] | None,
) -> None:
    frm = contact.state
    now = utcnow()
    contact.state = to.value
    contact.updated_at = now
    if to in FINAL:
        contact.closed_at = now
        contact.close_reason = reason
    s.add(_event(contact.id, "state", frm, to, reason, data, at=now))


def _event(
    contact_id: str, kind: str, frm: str | None, to: str | None, reason: str | None,
    data: dict[str, Any] | None, *, at: datetime | None = None,
) -> ContactEvent:
    return ContactEvent(**_row(contact_id, kind, frm, to, reason, data, at or utcnow()))


def _row(contact_id: str, kind: str, frm: str | None, to: str | None, reason: str | None,
         data: dict[str, Any] | None, at: datetime) -> dict[str, Any]:
    return {"contact_id": contact_id, "at": at, "kind": kind, "from_state": frm,
            "to_state": None if to is None else str(to), "reason": reason,
            "data": dict(data or {})}


def _logged_row(contact_id: str, event: Logged) -> dict[str, Any]:
    kind, data, at = event
    return _row(contact_id, kind, None, None, None, data, at)

