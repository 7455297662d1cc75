"""Row-level pieces of ticket writes, shared by the service, routing and SLA code: each
runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, insert, or_, select
from sqlalchemy.orm import Session

from ctl.errors import NotFound
from ctl.store.models import Base, Ticket, TicketContact, TicketEvent
from ctl.tickets import model
from ctl.tickets import states as st
from ctl.tickets.sla import Policy

_TICKETS = Base.metadata.tables["tickets"]
_EVENTS = Base.metadata.tables["ticket_events"]
_LINKS = Base.metadata.tables["ticket_contacts"]


def insert_new(s: Session, row: dict[str, Any], actor: str | None,
               created: dict[str, Any]) -> model.TicketView:
    """A new ticket's row, its `created` event and its first contact (created's
    contact_id), as plain INSERTs: the ORM's unit of work doubles a creation's CPU."""
    now, contact_id = row["created_at"], created.get("contact_id")
    s.execute(insert(_TICKETS), row)
    data = {"subject": row["subject"], "priority": row["priority"], **created}
    s.execute(insert(_EVENTS), {
        "ticket_id": row["id"], "at": now, "kind": "created", "actor": actor,
        "public": False, "data": {k: v for k, v in data.items() if v is not None}})
    if contact_id is not None:
        s.execute(insert(_LINKS), {"ticket_id": row["id"], "contact_id": contact_id,
                                   "linked_at": now})
    return model.view(Ticket(**row), [contact_id] if contact_id else [])


def load(s: Session, ref: str, *, lock: bool = False) -> Ticket:
    key = ref.removeprefix("#")
    by = Ticket.number == int(key) if key.isdigit() and len(key) < 10 else Ticket.id == ref
    stmt = select(Ticket).where(by)
    t = s.scalars(stmt.with_for_update() if lock else stmt).first()
    if t is None:
        raise NotFound(f"no ticket {ref}")
    return t


def view(s: Session, t: Ticket) -> model.TicketView:
    links = s.scalars(select(TicketContact.contact_id).where(TicketContact.ticket_id == t.id)
                      .order_by(TicketContact.linked_at))
    return model.view(t, list(links))


def event(t: Ticket, now: datetime, kind: str, actor: str | None, *, public: bool = False,
           **data: Any) -> TicketEvent:
    return TicketEvent(ticket_id=t.id, at=now, kind=kind, actor=actor, public=public,
                       data={k: v for k, v in data.items() if v is not None})


def link(s: Session, t: Ticket, contact_id: str, now: datetime, actor: str | None) -> None:
    if s.get(TicketContact, (t.id, contact_id)) is None:
        s.add(TicketContact(ticket_id=t.id, contact_id=contact_id, linked_at=now))
        s.add(event(t, now, "linked", actor, contact_id=contact_id))


def set_status(s: Session, t: Ticket, to: st.TicketStatus, now: datetime,
                actor: str | None, reason: str) -> None:
    st.check(t.status, to)
    s.add(event(t, now, "status", actor, public=True, **{"from": t.status, "to": to.value},
                 reason=reason or None))
    t.status = to.value
    if to is st.TicketStatus.RESOLVED:
        t.resolved_at = now
    elif to is st.TicketStatus.REOPENED:
        t.resolved_at = None
    elif to is st.TicketStatus.CLOSED:
        t.closed_at = now


def sla_may_worsen(policies: Mapping[str, Policy], now: datetime) -> ColumnElement[bool]:
    """Tickets whose SLA state could get worse at `now`, as SQL (a superset, never less):
    a due time passed on a clock still running, or, still ok, enough time since creation
    for a warning. Business time never runs faster than the wall clock, so the wall-clock
    test lets through every ticket that may have reached `warn_at` (and some that have
    not; the caller computes the state exactly). A paused ticket (sla_state "paused",
    pause.py) is never among them."""
    unanswered = Ticket.first_response_at.is_(None)
    due = or_(and_(unanswered, Ticket.response_due <= now), Ticket.resolution_due <= now)
    warnable: list[ColumnElement[bool]] = []
    for priority, p in policies.items():
        clocks = []
        if p.first_response is not None:
            since = now - timedelta(seconds=p.first_response * p.warn_at)
            clocks.append(and_(unanswered, Ticket.created_at <= since))
        if p.resolution is not None:
            clocks.append(Ticket.created_at <= now - timedelta(seconds=p.resolution * p.warn_at))
        if clocks:
            warnable.append(and_(Ticket.priority == priority, or_(*clocks)))
    warn = and_(Ticket.sla_state == "ok", or_(*warnable)) if warnable else false()
    return and_(Ticket.sla_state.in_(("ok", "warning")),
                Ticket.status.not_in(("resolved", "closed")), or_(due, warn))
