"""Contacts in the database: open, move through the state machine, log interactions.

Every state change and its event are written in one transaction. A contact row carries
a version (optimistic locking): when two nodes move the same contact at once, the loser
re-reads it and re-validates its transition against the winner's state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from ctl.contacts.states import FINAL, ContactState, check
from ctl.errors import InvalidTransition, NotFound
from ctl.store.db import Database
from ctl.store.models import CHANNELS, Contact, ContactEvent, new_id, utcnow

_FINAL = [s.value for s in FINAL]
_ATTEMPTS = 3


class ContactService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(
        self,
        channel: str,
        *,
        customer_id: str | None = None,
        external_ref: str | None = None,
        node: str | None = None,
        attributes: dict[str, Any] | None = None,
        reason: str = "created",
    ) -> Contact:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; known: {', '.join(sorted(CHANNELS))}")
        now = utcnow()
        contact = Contact(
            id=new_id(), channel=channel, customer_id=customer_id, external_ref=external_ref,
            node=node, state=ContactState.NEW.value, priority=0,
            attributes=dict(attributes or {}), criteria=[], created_at=now, updated_at=now,
        )
        async with self._db.session() as s, s.begin():
            s.add(contact)
            await s.flush()  # no relationship() tells the flush that the event depends on it
            s.add(_event(contact.id, "state", None, ContactState.NEW, reason, None))
        return contact

    async def transition(
        self, contact_id: str, to: ContactState | str, reason: str,
        data: dict[str, Any] | None = None,
    ) -> Contact:
        return await self._move(contact_id, to, reason, data, finish=False)

    async def finish(
        self, contact_id: str, to: ContactState | str, reason: str,
        data: dict[str, Any] | None = None,
    ) -> Contact:
        """Move to the final state `to`, or do nothing if the contact is already final."""
        if to not in FINAL:
            raise ValueError(f"finish() needs a final state, not {to!r}")
        return await self._move(contact_id, to, reason, data, finish=True)

    async def log(self, contact_id: str, kind: str, data: dict[str, Any]) -> None:
        if kind == "state":
            raise ValueError("state events are written by transition()")
        async with self._db.session() as s, s.begin():
            await _load(s, contact_id)
            s.add(_event(contact_id, kind, None, None, None, data))

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
        data: dict[str, Any] | None, *, finish: bool,
    ) -> Contact:
        for _ in range(_ATTEMPTS):
            try:
                async with self._db.session() as s, s.begin():
                    contact = await _load(s, contact_id)
                    if finish and contact.state in FINAL:
                        return contact
                    check(contact.state, to)
                    _apply(s, contact, ContactState(to), reason, data)
                return contact
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


def move_in(s: AsyncSession, contact: Contact, to: ContactState, reason: str,
            data: dict[str, Any] | None) -> None:
    """Move a contact loaded in `s` (the caller owns the transaction and its retries)."""
    check(contact.state, to)
    _apply(s, contact, to, reason, data)


def event_row(contact_id: str, kind: str, data: dict[str, Any]) -> ContactEvent:
    """An interaction event (not a state change) for the caller's transaction."""
    return _event(contact_id, kind, None, None, None, data)


def _apply(
    s: AsyncSession, contact: Contact, to: ContactState, reason: str,
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
    return ContactEvent(
        contact_id=contact_id, at=at or utcnow(), kind=kind, from_state=frm,
        to_state=None if to is None else str(to), reason=reason, data=dict(data or {}),
    )
