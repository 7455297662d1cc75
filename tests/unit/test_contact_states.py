from __future__ import annotations

import itertools
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctl.contacts.states import ALLOWED, FINAL, ContactState, check
from ctl.errors import InvalidTransition

STATES = list(ContactState)


def _reachable(start: ContactState) -> set[ContactState]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in ALLOWED[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@given(st.lists(st.sampled_from(STATES), max_size=60))
def test_random_walks_only_take_allowed_edges(targets: list[ContactState]) -> None:
    state = ContactState.NEW
    for to in targets:
        try:
            check(state, to)
        except InvalidTransition as e:
            assert to not in ALLOWED[state]
            assert str(state) in str(e) and str(to) in str(e)
            continue
        assert state not in FINAL, f"final {state} moved to {to}"
        assert to in ALLOWED[state]
        state = to


@given(st.data())
def test_walks_along_allowed_edges_are_accepted(data: st.DataObject) -> None:
    state = ContactState.NEW
    for _ in range(40):
        if state in FINAL:
            return
        to = data.draw(st.sampled_from(sorted(ALLOWED[state])))
        check(state, to)
        state = to


@given(st.sampled_from(sorted(FINAL)), st.sampled_from(STATES))
def test_a_final_state_never_moves(final: ContactState, to: ContactState) -> None:
    with pytest.raises(InvalidTransition):
        check(final, to)


@pytest.mark.parametrize("state", STATES)
def test_every_state_can_reach_an_end(state: ContactState) -> None:
    assert _reachable(state) & FINAL


def test_graph_covers_every_state_and_the_happy_path() -> None:
    assert set(ALLOWED) == set(STATES)
    path = ["new", "ivr", "queued", "offered", "assigned", "wrapup", "closed"]
    for frm, to in itertools.pairwise(path):
        check(frm, to)
    assert _reachable(ContactState.NEW) == set(STATES)


@pytest.mark.parametrize(
    ("frm", "to"),
    [("offered", "queued"), ("queued", "overflowed"), ("queued", "ticketed"),
     ("new", "queued"), ("new", "assigned"), ("assigned", "closed"), ("wrapup", "abandoned")],
)
def test_documented_shortcuts(frm: str, to: str) -> None:
    check(frm, to)


@pytest.mark.parametrize(
    ("frm", "to"),
    [("queued", "new"), ("ivr", "assigned"), ("wrapup", "assigned"), ("new", "new"),
     ("new", "bogus")],
)
def test_refused(frm: str, to: str) -> None:
    with pytest.raises(InvalidTransition, match=frm):
        check(frm, to)
