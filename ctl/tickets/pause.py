"""The resolution clock stands still while the customer owes us an answer.

Entering `pending_customer` records an `sla_paused` event (when, and the SLA state it
interrupted) and shows `sla_state` "paused", which the sweep never reads, so a paused
ticket neither warns nor breaches. Leaving it pushes `resolution_due` back by the business
time spent paused and restores the state. The events are the pause's memory: no column,
and the audit history says how long each wait lasted. A breached ticket stays breached
(its breach happened) but its due time still moves.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctl.store.models import Ticket, TicketEvent
from ctl.tickets import rows
from ctl.tickets import states as st
from ctl.tickets.sla import Sla

WAITING = st.TicketStatus.PENDING_CUSTOMER.value
_RUNNING = ("ok", "warning")


def follow(s: Session, t: Ticket, was: str, now: datetime, sla: Sla) -> None:
    """After a status change from `was`: pause or resume the clock."""
    if t.status == was or t.sla_state == "none":
        return
    if t.status == WAITING:
        s.add(rows.event(t, now, "sla_paused", "sla", state=t.sla_state))
        if t.sla_state in _RUNNING:
            t.sla_state = "paused"
    elif was == WAITING:
        _resume(s, t, now, sla)


def _resume(s: Session, t: Ticket, now: datetime, sla: Sla) -> None:
    paused = s.scalars(select(TicketEvent).where(
        TicketEvent.ticket_id == t.id, TicketEvent.kind.in_(("sla_paused", "sla_resumed")))
        .order_by(TicketEvent.id.desc()).limit(1)).first()
    if paused is None or paused.kind != "sla_paused":
        return  # it began waiting before it had a policy: nothing was paused
    seconds = sla.calendar.between(paused.at, now)
    if t.resolution_due is not None:
        t.resolution_due = sla.calendar.add(t.resolution_due, seconds)
    if t.sla_state == "paused":
        t.sla_state = str(paused.data.get("state", "ok"))
    s.add(rows.event(t, now, "sla_resumed", "sla", paused_seconds=seconds,
                     resolution_due=None if t.resolution_due is None
                     else t.resolution_due.isoformat()))


def paused_total(s: Session, t: Ticket) -> float:
    """Business seconds of every finished pause (a re-planned due time keeps them)."""
    done = s.scalars(select(TicketEvent.data).where(TicketEvent.ticket_id == t.id,
                                                    TicketEvent.kind == "sla_resumed"))
    return sum(float(d.get("paused_seconds", 0)) for d in done)
