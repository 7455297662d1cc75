"""Tickets in the database: create, change, move through the state machine, search.

Every change and its audit event are written in one transaction. A ticket row carries a
version (optimistic locking). A caller that passes the version it read gets Conflict if
somebody changed the ticket since; a caller that does not is re-applied on the newest
row when it loses a race, so concurrent changes (a tag here, a field there) all land.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ctl.errors import BadRequest, Conflict, InvalidTransition, NotFound
from ctl.store.db import Database, is_sqlite
from ctl.store.models import (
    Contact,
    Ticket,
    TicketCounter,
    TicketEvent,
    new_id,
    utcnow,
)
from ctl.tickets import model, pause, rows
from ctl.tickets import states as st
from ctl.tickets.model import TicketView
from ctl.tickets.routing import Departments
from ctl.tickets.rules import TicketsConfig
from ctl.tickets.search import Filters, search_in

T = TypeVar("T")
_NEXT = update(TicketCounter).where(TicketCounter.id == 1) \
    .values(last=TicketCounter.last + 1).returning(TicketCounter.last)
_BLOCK = 16  # numbers a PostgreSQL controller reserves at once
_ATTEMPTS = 8
Clock = Callable[[], datetime]
# A change applied to a loaded ticket inside the write transaction (may add events).
Apply = Callable[[Session, Ticket, datetime], None]
# Called after each committed change with the ticket and what happened (rules,
# notifications); a hook that changed the ticket again returns it as it left it.
Hook = Callable[[TicketView, str], Awaitable[TicketView | None]]


class TicketService:
    def __init__(self, db: Database, *, clock: Clock = utcnow,
                 departments: Departments | None = None,
                 config: TicketsConfig | None = None) -> None:
        self._db = db
        self.clock = clock
        self.departments = departments
        self.config = config or TicketsConfig.empty()
        self.hooks: list[Hook] = []
        self._serial = is_sqlite(db.url)
        self._numbers: list[int] = []
        self._numbering = asyncio.Lock()

    async def create(
        self, *, subject: str, description: str = "", customer_id: str | None = None,
        contact_id: str | None = None, channel: str | None = None, priority: str = "normal",
        department: str | None = None, category: str | None = None,
        attachments: Sequence[str] = (), source: str = "api", tags: Sequence[str] = (),
        fields: dict[str, Any] | None = None, actor: str | None = None, notify: bool = True,
    ) -> TicketView:
        """A new ticket (status new), numbered, with its `created` event. `contact_id` links
        the contact it came from; its customer and channel are the ticket's unless given."""
        routed = department is not None and self.departments is not None
        if routed:  # an unknown department is refused before anything is stored
            self._departments().queue(str(department))
        row: dict[str, Any] = {
            "subject": model.subject(subject), "description": str(description or ""),
            "priority": model.priority(priority), "channel": model.channel(channel),
            "category": category, "department": None if routed else department,
            "customer_id": customer_id,
            "source": source, "attachments": [str(a) for a in attachments],
            "tags": model.tags(list(tags)),
            "fields": model.fields(fields or {}, self.config.fields), "notify": notify,
            "status": st.TicketStatus.NEW.value, "sla_state": "none",
        }

        taken = None if self._serial else await self._number()

        created = {"department": department, "source": source, "contact_id": contact_id}

        def work(s: Session) -> TicketView:
            now = self.clock()
            if contact_id is not None:
                contact = s.get(Contact, contact_id)
                if contact is None:
                    raise NotFound(f"no contact {contact_id}")
                row["customer_id"] = row["customer_id"] or contact.customer_id
                row["channel"] = row["channel"] or contact.channel
            plan = self.config.sla.plan(row["priority"], now)
            full = {**row, "id": new_id(), "number": taken or s.execute(_NEXT).scalar_one(),
                    "created_at": now, "updated_at": now, "response_due": plan.response_due,
                    "resolution_due": plan.resolution_due, "sla_state": plan.state,
                    "version": 1}
            return rows.insert_new(s, full, actor, created)

        ticket = await self._db.write(work)
        ticket = await self._after(ticket, "created")
        if routed:
            ticket = await self._route(ticket, str(department), actor, "created")
        return ticket

    async def transfer(self, ref: str, department: str, *, reason: str = "",
                       version: int | None = None, actor: str | None = None) -> TicketView:
        """Hand the ticket to another department: its task leaves the old department's
        queue (or agent) and waits in the new one's."""
        self._departments().queue(department)
        ticket = await self.get(ref)
        if version is not None and ticket.version != version:
            raise Conflict(f"ticket #{ticket.number} is at version {ticket.version}, "
                           f"not {version}", hint="read it again and redo the change")
        if ticket.status in st.FINAL:
            raise InvalidTransition(f"ticket #{ticket.number} is closed: it cannot move")
        return await self._route(ticket, department, actor, reason or "transferred", version)

    def _departments(self) -> Departments:
        if self.departments is None:
            raise BadRequest("departments are not configured on this controller")
        return self.departments

    async def _route(self, ticket: TicketView, department: str, actor: str | None,
                     reason: str, version: int | None = None) -> TicketView:
        """Enqueue a new task for `department`, then record it; the old task is released
        only once the ticket points at the new one."""
        deps = self._departments()
        contact_id = await deps.route(
            ticket_id=ticket.id, number=ticket.number, subject=ticket.subject,
            priority=ticket.priority, department=department, customer_id=ticket.customer_id)
        old: list[str | None] = [None]

        def apply(s: Session, t: Ticket, now: datetime) -> None:
            old[0] = t.task_contact_id
            s.add(rows.event(t, now, "department", actor, public=False,
                         **{"from": t.department, "to": department},
                         contact_id=contact_id, reason=reason))
            t.department, t.task_contact_id = department, contact_id
            rows.link(s, t, contact_id, now, actor)

        try:
            view = await self._change(ticket.id, apply, version, "department")
        except BaseException:
            await deps.release(contact_id, "not_routed")
            raise
        if old[0] is not None and old[0] != contact_id:
            await deps.release(old[0], "transferred")
        return view

    async def _number(self) -> int:
        """The next ticket number on PostgreSQL. Holding the counter row's lock through a
        whole creation would make concurrent creators queue, so this controller reserves
        a block of numbers in a short transaction of its own and hands them out (a
        failed creation or a restart leaves gaps; with several controllers numbers follow
        creation order only roughly). SQLite serialises writers anyway: there the number
        is taken in the creating transaction."""
        async with self._numbering:
            if not self._numbers:
                block = update(TicketCounter).where(TicketCounter.id == 1).values(
                    last=TicketCounter.last + _BLOCK).returning(TicketCounter.last)
                last = await self._db.write(lambda s: int(s.execute(block).scalar_one()))
                self._numbers = list(range(last, last - _BLOCK, -1))
            return self._numbers.pop()

    async def get(self, ref: str) -> TicketView:
        """By id, or by number ("123" or "#123")."""
        async with self._db.session(readonly=True) as s:
            return await s.run_sync(lambda s: rows.view(s, rows.load(s, ref)))

    async def update(self, ref: str, changes: dict[str, Any], *, version: int | None = None,
                     actor: str | None = None) -> TicketView:
        """Subject, description, priority, category, assignee, notify (see model.EDITABLE)."""
        checked = model.changes(changes)

        def apply(s: Session, t: Ticket, now: datetime) -> None:
            diff = {k: {"from": getattr(t, k), "to": v} for k, v in checked.items()
                    if getattr(t, k) != v}
            for k, v in checked.items():
                setattr(t, k, v)
            if "priority" in diff:  # the SLA clocks restart from creation at the new pace
                self._replan(s, t)
            if diff:
                s.add(rows.event(t, now, "changed", actor, changes=diff))

        return await self._change(ref, apply, version, "updated")

    def _replan(self, s: Session, t: Ticket) -> None:
        """Due times from creation at the ticket's priority, minus nothing of the time it
        spent waiting on the customer (finished pauses push resolution back)."""
        sla = self.config.sla
        plan = sla.plan(t.priority, t.created_at)
        t.response_due, t.resolution_due = plan.response_due, plan.resolution_due
        if plan.resolution_due is not None:
            t.resolution_due = sla.calendar.add(plan.resolution_due, pause.paused_total(s, t))
        if t.sla_state not in ("breached", "paused"):
            t.sla_state = plan.state

    async def tag(self, ref: str, *, add: Sequence[str] = (), remove: Sequence[str] = (),
                  version: int | None = None, actor: str | None = None) -> TicketView:
        added, removed = model.tags(list(add)), model.tags(list(remove))

        def apply(s: Session, t: Ticket, now: datetime) -> None:
            before = set(t.tags)
            t.tags = sorted((before | set(added)) - set(removed))
            if set(t.tags) != before:
                s.add(rows.event(t, now, "tags", actor, added=sorted(set(t.tags) - before),
                             removed=sorted(before - set(t.tags))))

        return await self._change(ref, apply, version, "updated")

    async def set_fields(self, ref: str, values: dict[str, Any], *,
                         version: int | None = None, actor: str | None = None) -> TicketView:
        """Custom fields, merged key by key (None removes one)."""
        values = model.fields(values, self.config.fields)

        def apply(s: Session, t: Ticket, now: datetime) -> None:
            merged = {**t.fields, **values}
            merged = {k: v for k, v in merged.items() if v is not None}
            diff = {k: {"from": t.fields.get(k), "to": values[k]} for k in values
                    if t.fields.get(k) != values[k]}
            t.fields = merged
            if diff:
                s.add(rows.event(t, now, "fields", actor, changes=diff))

        return await self._change(ref, apply, version, "updated")

    async def move(self, ref: str, to: str, *, reason: str = "", version: int | None = None,
                   actor: str | None = None) -> TicketView:
        """Change the status; an invalid transition is refused with the reason."""
        target = st.status(to)

        def apply(s: Session, t: Ticket, now: datetime) -> None:
            if target is st.TicketStatus.RESOLVED:
                model.require_fields(t.fields, self.config.fields, t.number)
            was = t.status
            rows.set_status(s, t, target, now, actor, reason)
            pause.follow(s, t, was, now, self.config.sla)

        return await self._follow(await self._change(ref, apply, version, f"status:{target}"))

    async def note(self, ref: str, body: str, *, public: bool = False,
                   actor: str | None = None, version: int | None = None) -> TicketView:
        """An internal note, or (public=True) a reply the customer sees and is sent."""
        if not isinstance(body, str) or not body.strip():
            raise BadRequest("a note or reply needs a body (non-empty text)")

        def apply(s: Session, t: Ticket, now: datetime) -> None:
            if t.status in st.FINAL:
                raise InvalidTransition(f"ticket #{t.number} is closed: nothing can be added")
            s.add(rows.event(t, now, "reply" if public else "note", actor, public=public,
                         body=body))
            if public and t.first_response_at is None:
                t.first_response_at = now

        return await self._change(ref, apply, version, "reply" if public else "note")

    async def customer_reply(self, ref: str, body: str, *,
                             contact_id: str | None = None) -> TicketView:
        """The customer wrote back: waiting on them ends, a resolved ticket is reopened."""
        def apply(s: Session, t: Ticket, now: datetime) -> None:
            to = st.after_customer_reply(t.status)
            s.add(rows.event(t, now, "customer_reply", "customer", public=True, body=body,
                         contact_id=contact_id))
            if contact_id is not None:
                rows.link(s, t, contact_id, now, "customer")
            if to is not None:
                was = t.status
                rows.set_status(s, t, to, now, "customer", "customer replied")
                pause.follow(s, t, was, now, self.config.sla)

        return await self._follow(await self._change(ref, apply, None, "customer_reply"))

    async def reply_in_thread(self, thread: str, body: str, contact_id: str) -> None:
        """A customer's message in a channel thread: notifications go out in their ticket's
        thread (its id), so a message in such a thread is a reply on that ticket."""
        if len(thread) != 32 or not all(c in "0123456789abcdef" for c in thread):
            return  # an ordinary conversation (an email's root Message-ID, a chat session)
        try:
            await self.customer_reply(thread, body, contact_id=contact_id)
        except NotFound:
            return

    async def _follow(self, ticket: TicketView) -> TicketView:
        """Routing follows the status: a resolved or closed ticket's task ends; a reopened
        one waits in its department's queue again."""
        if self.departments is None or ticket.department is None:
            return ticket
        if ticket.status in ("resolved", "closed") and ticket.task_contact_id:
            await self.departments.release(ticket.task_contact_id, f"ticket_{ticket.status}")
        elif ticket.status == "reopened":
            return await self._route(ticket, ticket.department, "customer", "reopened")
        return ticket

    async def link_contact(self, ref: str, contact_id: str, *,
                           actor: str | None = None) -> TicketView:
        def apply(s: Session, t: Ticket, now: datetime) -> None:
            if s.get(Contact, contact_id) is None:
                raise NotFound(f"no contact {contact_id}")
            rows.link(s, t, contact_id, now, actor)

        return await self._change(ref, apply, None, "linked")

    async def history(self, ref: str, *, public_only: bool = False) -> list[dict[str, Any]]:
        def read(s: Session) -> list[dict[str, Any]]:
            t = rows.load(s, ref)
            stmt = select(TicketEvent).where(TicketEvent.ticket_id == t.id)
            if public_only:
                stmt = stmt.where(TicketEvent.public)
            return [model.event_json(e) for e in s.scalars(stmt.order_by(TicketEvent.id))]

        async with self._db.session(readonly=True) as s:
            return await s.run_sync(read)

    async def search(self, filters: Filters) -> list[TicketView]:
        async with self._db.session(readonly=True) as s:
            return await s.run_sync(lambda s: search_in(s, filters))

    async def ticket_of_task(self, contact_id: str) -> str | None:
        """The ticket a `task` contact routes (None for any other contact)."""
        async with self._db.session(readonly=True) as s:
            c = await s.get(Contact, contact_id)
        if c is None or c.channel != "task":
            return None
        ticket = (c.attributes or {}).get("ticket_id")
        return ticket if isinstance(ticket, str) else None

    async def running_clocks(self, now: datetime, limit: int = 1000,
                             after: int = 0) -> list[TicketView]:
        """Unresolved tickets whose SLA state may worsen at `now` (rows.sla_may_worsen),
        by number."""
        stmt = (select(Ticket).where(rows.sla_may_worsen(self.config.sla.policies, now),
                                     Ticket.number > after)
                .order_by(Ticket.number).limit(limit))
        async with self._db.session(readonly=True) as s:
            return [model.view(t) for t in await s.scalars(stmt)]

    async def mark_sla(self, ref: str, state: str) -> TicketView:
        """Record a warning or breach (the audit history says which clock and when)."""
        kind = "sla_breach" if state == "breached" else f"sla_{state}"

        def apply(s: Session, t: Ticket, now: datetime) -> None:
            if t.sla_state != state:
                s.add(rows.event(t, now, kind, "sla", public=False,
                                 **{"from": t.sla_state}, response_due=_iso(t.response_due),
                                 resolution_due=_iso(t.resolution_due)))
                t.sla_state = state

        return await self._change(ref, apply, None, kind)

    async def change(self, ref: str, apply: Apply, *, version: int | None = None,
                     what: str = "updated") -> TicketView:
        """Apply a change written elsewhere in ctl/tickets (routing, SLA) under the lock."""
        return await self._change(ref, apply, version, what)

    async def _change(self, ref: str, apply: Apply, version: int | None,
                      what: str) -> TicketView:
        def work(s: Session) -> TicketView:
            # Locked for the transaction: writers of one ticket queue instead of retrying
            # (SQLite's BEGIN IMMEDIATE already serialises them); `version` is the lock
            # between the caller's read and this write.
            t = rows.load(s, ref, lock=True)
            if version is not None and t.version != version:
                raise Conflict(f"ticket #{t.number} is at version {t.version}, not {version}",
                               hint="somebody changed it: read it again and redo the change")
            now = self.clock()
            apply(s, t, now)
            if s.dirty or s.new:
                t.updated_at = now
            s.flush()
            return rows.view(s, t)

        for _ in range(_ATTEMPTS):
            try:
                ticket = await self._db.write(work)
            except StaleDataError:
                if version is not None:  # the caller's view is stale: it must decide again
                    raise Conflict(f"ticket {ref} changed meanwhile",
                                   hint="read it again and redo the change") from None
                continue  # re-read and re-apply on the winner's row
            return await self._after(ticket, what)
        raise Conflict(f"ticket {ref} kept changing", hint="retry later")

    async def _after(self, ticket: TicketView, what: str) -> TicketView:
        for hook in self.hooks:
            ticket = await hook(ticket, what) or ticket
        return ticket


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()
