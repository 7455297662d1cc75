"""Warm transfers in the engine: the consulted agent is reserved, then keeps the contact
or is freed; a contact that ends mid-consultation frees both."""

from __future__ import annotations

import pytest

from ctl.errors import InvalidTransition
from ctl.routing.engine import Engine
from ctl.routing.model import (
    AgentConfig,
    Assigned,
    ConsultEnded,
    ContactRequest,
    Offered,
    ProfileEntry,
    QueueConfig,
)


def setup() -> tuple[Engine, str]:
    e = Engine([QueueConfig("q")])
    for a in ("ann", "ben", "cid"):
        e.upsert_agent(AgentConfig(a, profile=(ProfileEntry("q"),)), 0)
    e.set_agent_state("ann", "available", 1)
    offer = next(x for x in e.enqueue(ContactRequest("c1", "voice", "q", 0, 2), 2)
                 if isinstance(x, Offered))
    assert any(isinstance(x, Assigned) for x in e.accept(offer.offer_id, 3))
    e.set_agent_state("ben", "available", 4)
    return e, "c1"


def test_consulted_agent_is_reserved_then_keeps_the_contact() -> None:
    e, c = setup()
    e.consult(c, "ben", 5)
    # ben is held for the consultation: a new call goes to nobody (cid is offline).
    assert not [x for x in e.enqueue(ContactRequest("c2", "voice", "q", 0, 6), 6)
                if isinstance(x, Offered)]
    events = e.end_consult(c, 7, hand_over=True)
    assert ConsultEnded(c, "ann", "ben", True) in events
    assert e.contacts[c].agent == "ben"
    # ann is free and takes the waiting call; ben holds c1, nothing else.
    assert [x.agent_id for x in events if isinstance(x, Offered)] == ["ann"]
    assert e.agents["ben"].contacts == {c}


def test_cancelled_consultation_frees_the_consulted_agent() -> None:
    e, c = setup()
    e.consult(c, "ben", 5)
    e.enqueue(ContactRequest("c2", "voice", "q", 0, 6), 6)
    events = e.end_consult(c, 7, hand_over=False)
    assert e.contacts[c].agent == "ann"
    assert [x.agent_id for x in events if isinstance(x, Offered)] == ["ben"]


def test_consult_needs_a_free_agent_and_one_at_a_time() -> None:
    e, c = setup()
    with pytest.raises(InvalidTransition):
        e.consult(c, "cid", 5)  # offline
    with pytest.raises(InvalidTransition):
        e.consult(c, "ann", 5)  # herself
    e.consult(c, "ben", 5)
    with pytest.raises(InvalidTransition):
        e.consult(c, "ben", 6)


def test_contact_ending_mid_consultation_frees_both() -> None:
    e, c = setup()
    e.consult(c, "ben", 5)
    events = e.remove(c, 6)
    assert ConsultEnded(c, "ann", "ben", False) in events
    assert e.agents["ann"].total == e.agents["ben"].total == 0
    assert not e.consults
