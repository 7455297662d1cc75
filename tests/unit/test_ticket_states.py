"""The ticket state machine: random walks only take allowed edges, and every refusal says why."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctl.errors import InvalidTransition
from ctl.tickets.states import (
    ALLOWED,
    FINAL,
    ON_CUSTOMER_REPLY,
    TicketStatus,
    after_customer_reply,
    check,
)

STATUSES = list(TicketStatus)
# A step of a random walk: a requested status, or a customer's reply.
STEPS = st.one_of(st.sampled_from(STATUSES), st.just("reply"))


def _reachable(start: TicketStatus) -> set[TicketStatus]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in ALLOWED[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@given(st.lists(STEPS, max_size=80))
def test_random_walks_take_only_allowed_edges(steps: list[TicketStatus | str]) -> None:
    status = TicketStatus.NEW
    for step in steps:
        if step == "reply":
            try:
                to = after_customer_reply(status)
            except InvalidTransition as e:
                assert status in FINAL and "closed" in str(e) and e.hint
                continue
            if to is None:
                assert status not in ON_CUSTOMER_REPLY
                continue
            assert to in ALLOWED[status], f"a reply took {status} -> {to}"
            status = to
            continue
        to = TicketStatus(step)
        try:
            check(status, to)
        except InvalidTransition as e:
            assert to not in ALLOWED[status]
            assert str(status) in str(e) and str(to) in str(e)
            assert e.hint, "a refusal gives the way forward"
            continue
        assert status not in FINAL, f"closed ticket moved to {to}"
        status = to


@given(st.sampled_from(STATUSES), st.sampled_from(STATUSES))
def test_check_agrees_with_the_table(frm: TicketStatus, to: TicketStatus) -> None:
    allowed = to in ALLOWED[frm]
    try:
        check(frm, to)
    except InvalidTransition:
        assert not allowed
    else:
        assert allowed


def test_every_ticket_can_still_be_closed_and_nothing_returns_to_new() -> None:
    for status in TicketStatus:
        assert TicketStatus.CLOSED in _reachable(status)
        assert TicketStatus.NEW not in ALLOWED[status]
    assert _reachable(TicketStatus.NEW) == set(TicketStatus)


def test_reasons_for_refusals() -> None:
    with pytest.raises(InvalidTransition, match="closed tickets are final") as e:
        check("closed", "reopened")
    assert e.value.hint and "new ticket" in e.value.hint
    with pytest.raises(InvalidTransition, match="reopened, not worked on silently") as e:
        check("resolved", "open")
    assert e.value.hint == "from resolved it may go to closed, reopened"
    with pytest.raises(InvalidTransition, match="only start as new"):
        check("open", "new")
    with pytest.raises(InvalidTransition, match="unknown ticket status 'done'"):
        check("open", "done")


def test_customer_reply_reopens_or_resumes() -> None:
    assert after_customer_reply("resolved") is TicketStatus.REOPENED
    assert after_customer_reply("pending_customer") is TicketStatus.OPEN
    assert after_customer_reply("open") is None
    with pytest.raises(InvalidTransition, match="cannot reopen"):
        after_customer_reply("closed")
