"""The ticket state machine: which status may follow which, and why not."""

from __future__ import annotations

from enum import StrEnum

from ctl.errors import InvalidTransition


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING_CUSTOMER = "pending_customer"
    PENDING_DEPARTMENT = "pending_department"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


_S = TicketStatus
# Statuses in which somebody is working on the ticket (or waiting to): from each of them
# the ticket may wait on either side, be resolved, or be closed outright (spam, duplicate).
_WORKING = frozenset({_S.OPEN, _S.PENDING_CUSTOMER, _S.PENDING_DEPARTMENT, _S.RESOLVED,
                      _S.CLOSED})

ALLOWED: dict[TicketStatus, frozenset[TicketStatus]] = {
    _S.NEW: _WORKING,
    _S.OPEN: _WORKING - {_S.OPEN},
    _S.PENDING_CUSTOMER: _WORKING - {_S.PENDING_CUSTOMER},
    _S.PENDING_DEPARTMENT: _WORKING - {_S.PENDING_DEPARTMENT},
    _S.REOPENED: _WORKING,
    # A resolved ticket is either confirmed (closed) or comes back (reopened); it is not
    # silently worked on again, so its history shows that the resolution did not hold.
    _S.RESOLVED: frozenset({_S.CLOSED, _S.REOPENED}),
    _S.CLOSED: frozenset(),
}
FINAL = frozenset({_S.CLOSED})
# The customer owes the next move: their reply puts the ticket back to work.
ON_CUSTOMER_REPLY: dict[TicketStatus, TicketStatus] = {
    _S.PENDING_CUSTOMER: _S.OPEN,
    _S.RESOLVED: _S.REOPENED,
}


def status(value: TicketStatus | str) -> TicketStatus:
    try:
        return TicketStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in TicketStatus)
        raise InvalidTransition(f"unknown ticket status {value!r}", hint=f"one of: {known}") \
            from None


def check(frm: TicketStatus | str, to: TicketStatus | str) -> None:
    """Raise InvalidTransition, with the reason, unless a ticket may go from `frm` to `to`."""
    a, b = status(frm), status(to)
    if b in ALLOWED[a]:
        return
    if a in FINAL:
        raise InvalidTransition(f"ticket cannot go from {a} to {b}: closed tickets are final",
                                hint="open a new ticket that refers to this one")
    allowed = ", ".join(sorted(ALLOWED[a]))
    why = " (tickets only start as new)" if b is _S.NEW else \
        " (a resolved ticket is reopened, not worked on silently)" if a is _S.RESOLVED else ""
    raise InvalidTransition(f"ticket cannot go from {a} to {b}{why}",
                            hint=f"from {a} it may go to {allowed}")


def after_customer_reply(current: TicketStatus | str) -> TicketStatus | None:
    """The status a customer's reply moves the ticket to, or None if it stays."""
    a = status(current)
    if a in FINAL:
        raise InvalidTransition(f"ticket is {a}: a reply cannot reopen it",
                                hint="open a new ticket that refers to this one")
    return ON_CUSTOMER_REPLY.get(a)
