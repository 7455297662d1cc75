"""The contact state machine shared by every channel."""

from __future__ import annotations

from enum import StrEnum

from ctl.errors import InvalidTransition


class ContactState(StrEnum):
    NEW = "new"
    IVR = "ivr"
    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    WRAPUP = "wrapup"
    CLOSED = "closed"
    ABANDONED = "abandoned"
    OVERFLOWED = "overflowed"
    TICKETED = "ticketed"


_S = ContactState
FINAL = frozenset({_S.CLOSED, _S.ABANDONED, _S.OVERFLOWED, _S.TICKETED})
# Any live contact may end: the customer hangs up (abandoned) or it is closed.
_ENDS = frozenset({_S.CLOSED, _S.ABANDONED})

ALLOWED: dict[ContactState, frozenset[ContactState]] = {
    _S.NEW: _ENDS | {_S.IVR, _S.QUEUED, _S.ASSIGNED},  # assigned: direct call to an agent
    _S.IVR: _ENDS | {_S.QUEUED},
    _S.QUEUED: _ENDS | {_S.OFFERED, _S.OVERFLOWED, _S.TICKETED},
    _S.OFFERED: _ENDS | {_S.ASSIGNED, _S.QUEUED},  # queued: declined or timed out
    # closed directly: no wrap-up configured; queued again: transferred
    _S.ASSIGNED: _ENDS | {_S.WRAPUP, _S.QUEUED},
    _S.WRAPUP: _ENDS,
    **{s: frozenset() for s in FINAL},
}


def check(frm: ContactState | str, to: ContactState | str) -> None:
    """Raise InvalidTransition unless a contact may go from `frm` to `to`."""
    try:
        a, b = ContactState(frm), ContactState(to)
    except ValueError:
        raise InvalidTransition(f"unknown contact state in {frm!r} -> {to!r}") from None
    if b not in ALLOWED[a]:
        allowed = ", ".join(sorted(ALLOWED[a])) or "none: it is final"
        raise InvalidTransition(
            f"contact cannot go from {a} to {b}", hint=f"from {a} it may go to {allowed}",
            reason="contact_transition", params={"from": str(a), "to": str(b)})
