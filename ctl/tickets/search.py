"""Ticket search: filters that map to indexed columns, text over subject and description."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from ctl.errors import BadRequest
from ctl.store.models import Ticket, TicketContact
from ctl.tickets import model
from ctl.tickets import states as st

SLA_STATES = ("none", "ok", "warning", "breached", "paused")
ACTIVE = tuple(s.value for s in st.TicketStatus if s.value not in ("resolved", "closed"))
_MAX_LIMIT = 500


@dataclass(frozen=True)
class Filters:
    status: Sequence[str] = ()
    department: str | None = None
    sla_state: str | None = None
    customer_id: str | None = None
    assignee_id: str | None = None
    tag: str | None = None
    text: str | None = None
    before: int | None = None  # a ticket number: the page after one ending there
    limit: int = 50

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> Filters:
        """From URL query parameters (status may be comma-separated); unknown ones refused."""
        known = {"status", "department", "sla_state", "customer_id", "customer", "assignee_id",
                 "tag", "text", "q", "before", "limit"}
        unknown = set(q) - known
        if unknown:
            raise BadRequest(f"unknown filter {', '.join(sorted(unknown))}",
                             hint=f"filters: {', '.join(sorted(known))}")
        statuses = [x for x in (q.get("status") or "").split(",") if x]
        if "active" in statuses:  # what an agent serving the customer wants to see
            statuses = [x for x in statuses if x != "active"] + list(ACTIVE)
        return cls(status=statuses, department=q.get("department"),
                   sla_state=q.get("sla_state"),
                   customer_id=q.get("customer_id") or q.get("customer"),
                   assignee_id=q.get("assignee_id"), tag=q.get("tag"),
                   text=q.get("text") or q.get("q"), before=_int(q, "before"),
                   limit=_int(q, "limit") or 50)


def _int(q: Mapping[str, str], name: str) -> int | None:
    value = q.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"{name} must be a whole number, not {value!r}")
    return int(value)


def statement(f: Filters) -> Select[Any]:
    stmt = select(Ticket)
    if f.status:
        stmt = stmt.where(Ticket.status.in_([st.status(s).value for s in f.status]))
    if f.department:
        stmt = stmt.where(Ticket.department == f.department)
    if f.sla_state:
        if f.sla_state not in SLA_STATES:
            raise BadRequest(f"unknown SLA state {f.sla_state!r}",
                             hint=f"one of: {', '.join(SLA_STATES)}")
        stmt = stmt.where(Ticket.sla_state == f.sla_state)
    if f.customer_id:
        stmt = stmt.where(Ticket.customer_id == f.customer_id)
    if f.assignee_id:
        stmt = stmt.where(Ticket.assignee_id == f.assignee_id)
    if f.text:
        words = f"%{_escape(f.text.strip())}%"
        stmt = stmt.where(or_(Ticket.subject.ilike(words, escape="\\"),
                              Ticket.description.ilike(words, escape="\\")))
    if f.before is not None:
        stmt = stmt.where(Ticket.number < f.before)
    if not 1 <= f.limit <= _MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {_MAX_LIMIT}")
    return stmt.order_by(Ticket.number.desc()).limit(f.limit)


def search_in(s: Session, f: Filters) -> list[model.TicketView]:
    """Newest first. A tag filter is applied after the query (tags are JSON, not indexed):
    pages may then hold fewer than `limit` tickets."""
    rows: list[Ticket] = list(s.scalars(statement(f)))
    if f.tag:
        rows = [t for t in rows if f.tag in t.tags]
    links: dict[str, list[str]] = {t.id: [] for t in rows}
    if rows:
        for tid, cid in s.execute(select(TicketContact.ticket_id, TicketContact.contact_id)
                                  .where(TicketContact.ticket_id.in_(links))
                                  .order_by(TicketContact.linked_at)):
            links[tid].append(cid)
    return [model.view(t, links[t.id]) for t in rows]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
