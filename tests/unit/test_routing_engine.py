"""Example-based tests of each documented routing behaviour (issue #3), one story per test.

test_routing_invariants.py checks general properties over random histories; these pin the
specific rules: who gets which contact, when, and what the engine says about it.
"""

from __future__ import annotations

import pytest

from ctl.routing.engine import Engine
from ctl.routing.model import (
    VOICE,
    AgentChanged,
    AgentConfig,
    AgentStatus,
    Assigned,
    ContactRequest,
    Event,
    Offered,
    OfferEnded,
    Overflow,
    Overflowed,
    OverflowKind,
    Policy,
    ProfileEntry,
    QueueConfig,
    Released,
    Requeued,
    Requirement,
    Step,
    StepExpired,
    WrapupStarted,
)
from ctl.routing.views import position

CHAT = "chat"


def engine(*queues: QueueConfig) -> Engine:
    return Engine(queues or [QueueConfig("q")])


def agent(e: Engine, agent_id: str, now: float = 0.0, *, queues: tuple[str, ...] = ("q",),
          available: bool = True, **cfg: object) -> list[Event]:
    """Register an agent (profile: `queues`, priority 1, no delay) and make it available."""
    profile = cfg.pop("profile", tuple(ProfileEntry(q) for q in queues))
    e.upsert_agent(AgentConfig(agent_id, profile=profile, **cfg), now)  # type: ignore[arg-type]
    return e.set_agent_state(agent_id, "available", now) if available else []


def contact(e: Engine, cid: str, now: float = 0.0, channel: str = VOICE, queue: str = "q",
            priority: int = 0, steps: tuple[Step, ...] = ()) -> list[Event]:
    return e.enqueue(ContactRequest(cid, channel, queue, priority, now, steps), now)


def offered(events: list[Event]) -> list[tuple[str, str]]:
    """(contact, agent) for each offer made, in order."""
    return [(ev.contact_id, ev.agent_id) for ev in events if isinstance(ev, Offered)]


def offer_of(e: Engine, cid: str, agent_id: str) -> str:
    [offer] = [o.id for o in e.offers.values() if (o.contact_id, o.agent_id) == (cid, agent_id)]
    return offer


def serve(e: Engine, cid: str, agent_id: str, now: float) -> list[Event]:
    """The agent accepts its offer of `cid` and completes the contact at once."""
    e.accept(offer_of(e, cid, agent_id), now)
    return e.complete(cid, now)


def skill(level: int, expires: float | None = None) -> Step:
    return Step(Requirement.of({"billing": level}), expires)


# --- ordering -----------------------------------------------------------------------------

def test_queue_serves_priority_then_age() -> None:
    e = engine()
    agent(e, "a1", available=False)
    for i, (cid, prio) in enumerate([("old", 0), ("vip", 5), ("vip2", 5), ("late", 0)]):
        contact(e, cid, float(i), priority=prio)
    events, served = e.set_agent_state("a1", "available", 10), []
    for t in range(11, 15):
        [(cid, _)] = offered(events)
        served.append(cid)
        events = serve(e, cid, "a1", t)
    assert served == ["vip", "vip2", "old", "late"]


def test_profile_priority_lower_number_first_over_contact_priority_and_age() -> None:
    e = engine(QueueConfig("hi"), QueueConfig("lo"))
    agent(e, "a1", available=False, profile=(ProfileEntry("lo", 2), ProfileEntry("hi", 1)))
    contact(e, "c_lo", 0, queue="lo", priority=9)
    contact(e, "c_hi", 1, queue="hi", priority=0)
    assert offered(e.set_agent_state("a1", "available", 2)) == [("c_hi", "a1")]


@pytest.mark.parametrize(("frees_at", "offered_at"), [(5, 10), (10, 10), (12, 12)])
def test_profile_delay_exactly(frees_at: float, offered_at: float) -> None:
    e = engine()
    agent(e, "a1", profile=(ProfileEntry("q", delay=10),))
    e.adopt(ContactRequest("c0", VOICE, "q"), "a1", "assigned", 0)
    contact(e, "c1", 0)
    events = e.complete("c0", frees_at)
    if offered_at > frees_at:  # the delay timer, exactly on time
        assert offered(events) == [] and offered(e.advance(offered_at - 0.001)) == []
        events = e.advance(offered_at)
    assert offered(events) == [("c1", "a1")]


def test_profile_delay_counts_per_contact_past_a_newer_head() -> None:
    e = engine()
    agent(e, "a1", profile=(ProfileEntry("q", delay=10),))
    e.adopt(ContactRequest("c0", VOICE, "q"), "a1", "assigned", 0)
    contact(e, "old", 0)
    contact(e, "vip", 5, priority=5)  # first in the queue, but a1 sees it only at 15
    assert offered(e.complete("c0", 10)) == [("old", "a1")]


# --- agent selection ----------------------------------------------------------------------

def test_longest_idle_is_default_and_counts_from_availability_or_last_contact_end() -> None:
    e = engine()
    agent(e, "a2", 0, available=False)
    agent(e, "a1", 3)
    e.set_agent_state("a2", "available", 5)
    assert offered(contact(e, "c1", 10)) == [("c1", "a1")]
    serve(e, "c1", "a1", 20)  # a1 idle since 20, a2 since 5
    assert offered(contact(e, "c2", 30)) == [("c2", "a2")]


def test_least_occupied_picks_the_agent_with_fewest_contacts() -> None:
    e = engine(QueueConfig("q", policy=Policy.LEAST_OCCUPIED))
    agent(e, "a1", 0, capacity={CHAT: 3})
    agent(e, "a2", 1, capacity={CHAT: 3})
    assert offered(contact(e, "c1", 2, CHAT)) == [("c1", "a1")]
    e.accept(offer_of(e, "c1", "a1"), 2)
    assert offered(contact(e, "c2", 3, CHAT)) == [("c2", "a2")]  # longest idle: a1 again
    assert offered(contact(e, "c3", 4, CHAT)) == [("c3", "a1")]  # 1/3 each: longest idle


def test_highest_proficiency_picks_the_best_in_the_required_skill() -> None:
    e = engine(QueueConfig("q", policy=Policy.HIGHEST_PROFICIENCY))
    agent(e, "a1", 0, skills={"billing": 2})
    agent(e, "a2", 1, skills={"billing": 5, "sales": 1})
    agent(e, "a3", 2, skills={"billing": 4})
    assert offered(contact(e, "c1", 3, steps=(skill(2),))) == [("c1", "a2")]


def test_round_robin_agents_take_turns() -> None:
    e = engine(QueueConfig("q", policy=Policy.ROUND_ROBIN))
    agent(e, "a1", capacity={CHAT: 3})
    agent(e, "a2", capacity={CHAT: 3})
    got = [offered(contact(e, f"c{i}", i, CHAT))[0][1] for i in range(4)]
    assert got == ["a1", "a2", "a1", "a2"]  # longest idle would give a1 all of them


def test_ring_all_first_accept_wins_and_frees_the_others() -> None:
    e = engine(QueueConfig("q", policy=Policy.RING_ALL, ring_count=2, offer_timeout=15))
    for i, a in enumerate(("a1", "a2", "a3")):
        agent(e, a, i)
    events = contact(e, "c1", 5)
    assert offered(events) == [("c1", "a1"), ("c1", "a2")]
    assert all(ev.expires_at == 20 for ev in events if isinstance(ev, Offered))
    won = offer_of(e, "c1", "a2")
    events = e.accept(won, 6)
    lost = [ev for ev in events if isinstance(ev, OfferEnded)]
    assert [(ev.agent_id, ev.reason) for ev in lost] == [("a1", "accepted_elsewhere")]
    assert events[-1] == Assigned("c1", "a2", won)
    assert e.agents["a1"].total == 0 and e.status("a1") is AgentStatus.AVAILABLE
    assert offered(contact(e, "c2", 7)) == [("c2", "a1"), ("c2", "a3")]


# --- capacity -----------------------------------------------------------------------------

def test_capacity_per_channel() -> None:
    e = engine()
    agent(e, "a1", capacity={CHAT: 2})
    assert offered(contact(e, "c1", 0, CHAT)) == [("c1", "a1")]
    assert offered(contact(e, "c2", 1, CHAT)) == [("c2", "a1")]
    assert offered(contact(e, "c3", 2, CHAT)) == []  # full
    assert offered(contact(e, "v1", 3, VOICE)) == []  # no voice capacity at all
    assert offered(serve(e, "c1", "a1", 4)) == [("c3", "a1")]


@pytest.mark.parametrize("exclusive", [True, False])
@pytest.mark.parametrize(("first", "second"), [(CHAT, VOICE), (VOICE, CHAT)])
def test_voice_exclusive(exclusive: bool, first: str, second: str) -> None:
    e = engine()
    agent(e, "a1", capacity={VOICE: 1, CHAT: 2}, voice_exclusive=exclusive)
    contact(e, "c1", 0, first)
    e.accept(offer_of(e, "c1", "a1"), 0)
    got = offered(contact(e, "c2", 1, second))
    assert got == ([] if exclusive else [("c2", "a1")])


# --- offers -------------------------------------------------------------------------------

@pytest.mark.parametrize("reason", ["timeout", "declined"])
def test_missed_or_declined_contact_keeps_its_place_and_skips_that_agent(reason: str) -> None:
    e = engine()
    agent(e, "a1")
    agent(e, "a2", available=False)
    for i in range(1, 5):
        contact(e, f"c{i}", i - 1)
    assert offered(e.advance(19.999)) == []  # offer_timeout 20
    events = e.advance(20) if reason == "timeout" else e.decline(offer_of(e, "c1", "a1"), 20)
    assert [type(ev) for ev in events[:2]] == [OfferEnded, Requeued]
    assert events[0].reason == reason and events[1] == Requeued("c1", reason)  # type: ignore
    assert offered(events) == [("c2", "a1")]
    assert offered(serve(e, "c2", "a1", 21)) == [("c3", "a1")]  # not c1 again
    assert offered(e.set_agent_state("a2", "available", 22)) == [("c1", "a2")]  # before c4


def test_max_misses_sets_agent_away_missed() -> None:
    e = engine()
    agent(e, "a1", max_misses=2)
    contact(e, "c1", 0)
    contact(e, "c2", 0)
    assert offered(e.advance(20)) == [("c2", "a1")]  # first miss: still available
    events = e.advance(40)
    assert AgentChanged("a1", AgentStatus.AWAY, "missed") in events
    assert e.status("a1") is AgentStatus.AWAY and e.agents["a1"].reason == "missed"
    assert offered(events) == [] and not e.offers


def test_accept_resets_misses() -> None:
    e = engine()
    agent(e, "a1", max_misses=2)
    for i in range(4):
        contact(e, f"c{i}", 0)
    assert offered(e.advance(20)) == [("c1", "a1")]  # miss 1 (c0)
    assert offered(serve(e, "c1", "a1", 21)) == [("c2", "a1")]  # accept: misses back to 0
    assert offered(e.advance(41)) == [("c3", "a1")]  # miss 1 again, not 2
    assert e.status("a1") is AgentStatus.AVAILABLE


# --- routing steps ------------------------------------------------------------------------

def test_steps_relax_exactly_on_expiry_then_any_agent() -> None:
    e = engine()
    agent(e, "a0", 0)  # no skills, idle longest
    agent(e, "a1", 1, skills={"billing": 2})
    events = contact(e, "c1", 5, steps=(skill(4, 10), skill(2, 20)))
    assert offered(events) == [] and offered(e.advance(14.999)) == []
    events = e.advance(15)
    assert events[0] == StepExpired("c1", 1)
    assert offered(events) == [("c1", "a1")]  # billing >= 2 now, a0 not yet
    assert offered(e.decline(offer_of(e, "c1", "a1"), 16)) == []
    assert offered(e.advance(24.999)) == []
    events = e.advance(25)
    assert events[0] == StepExpired("c1", 2)  # past the last step: any agent of the queue
    assert offered(events) == [("c1", "a0")]


@pytest.mark.parametrize("sticky_free_at", [5.0, None])
def test_sticky_step_holds_contact_for_one_agent_until_expiry(sticky_free_at: float | None
                                                              ) -> None:
    e = engine()
    for a in ("a1", "a2"):
        agent(e, a)
        e.adopt(ContactRequest(f"{a}-call", VOICE, "q"), a, "assigned", 0)
    assert offered(contact(e, "c1", 0, steps=(Step(Requirement.of(agent="a2"), 30),))) == []
    assert offered(e.complete("a1-call", 1)) == []  # a1 free, but c1 waits for a2
    if sticky_free_at is not None:
        assert offered(e.complete("a2-call", sticky_free_at)) == [("c1", "a2")]
    else:
        assert offered(e.advance(29.999)) == []
        assert offered(e.advance(30)) == [("c1", "a1")]


@pytest.mark.parametrize("ends", [(None, 10.0), (20.0, 10.0), (5.0, None, 10.0)])
def test_steps_out_of_order_are_refused(ends: tuple[float | None, ...]) -> None:
    e = engine()
    with pytest.raises(ValueError, match="expire in order"):
        contact(e, "c1", steps=tuple(skill(1, end) for end in ends))
    assert "c1" not in e.contacts and e.queues["q"].waiting == 0
    contact(e, "c1", steps=(skill(1, 10.0), skill(1, 10.0), skill(1, None)))  # fine


# --- queues -------------------------------------------------------------------------------

@pytest.mark.parametrize("overflow", [Overflow(OverflowKind.QUEUE, "q2"),
                                      Overflow(OverflowKind.TICKET),
                                      Overflow(OverflowKind.VOICEMAIL)])
def test_max_length_overflow(overflow: Overflow) -> None:
    e = engine(QueueConfig("q", max_length=1, overflow=overflow), QueueConfig("q2"))
    agent(e, "a2", queues=("q2",))
    contact(e, "c1", 0)
    events = contact(e, "c2", 1)
    assert events[0] == Overflowed("c2", "q", overflow, "max_length")
    if overflow.kind is OverflowKind.QUEUE:  # moves, keeping the contact
        assert offered(events) == [("c2", "a2")] and e.contacts["c2"].queue == "q2"
    else:  # leaves routing
        assert len(events) == 1 and set(e.contacts) == {"c1"}
    assert e.queues["q"].waiting == 1


def test_max_wait_overflows_exactly_on_time() -> None:
    e = engine(QueueConfig("q", max_wait=30, overflow=Overflow(OverflowKind.VOICEMAIL)))
    contact(e, "c1", 0)
    assert e.advance(29.999) == []
    assert e.advance(30) == [Overflowed("c1", "q", Overflow(OverflowKind.VOICEMAIL), "max_wait")]
    assert not e.contacts and e.queues["q"].waiting == 0


def test_max_wait_of_an_offered_contact_applies_when_the_offer_ends() -> None:
    e = engine(QueueConfig("q", max_wait=30, overflow=Overflow(OverflowKind.TICKET)))
    agent(e, "a1", available=False)
    contact(e, "c1", 0)
    e.set_agent_state("a1", "available", 25)
    assert e.advance(30) == []  # on offer until 45
    events = e.advance(45)
    assert events[-1] == Overflowed("c1", "q", Overflow(OverflowKind.TICKET), "max_wait")
    assert not any(isinstance(ev, Requeued) for ev in events) and not e.contacts


CALLBACK = Overflow(OverflowKind.CALLBACK)


def test_overflow_to_callback_keeps_the_contact_in_its_place_for_good() -> None:
    e = engine(QueueConfig("q", max_wait=30, overflow=CALLBACK))
    agent(e, "a1", available=False)
    contact(e, "c1", 0)
    contact(e, "c2", 10)
    assert e.advance(30) == [Overflowed("c1", "q", CALLBACK, "max_wait")]
    assert e.advance(40) == [Overflowed("c2", "q", CALLBACK, "max_wait")]
    assert e.advance(1000) == [] and e.queues["q"].waiting == 2  # never overflows again
    contact(e, "c3", 1000)
    assert position(e, "c1") == 1 and position(e, "c3") == 3  # first come, first served
    assert offered(e.set_agent_state("a1", "available", 1001)) == [("c1", "a1")]


def test_a_callback_holds_no_line_so_max_length_lets_it_wait() -> None:
    e = engine(QueueConfig("q", max_length=1, max_wait=30, overflow=CALLBACK))
    contact(e, "c1", 0)
    assert contact(e, "c2", 1) == [Overflowed("c2", "q", CALLBACK, "max_length")]
    assert set(e.contacts) == {"c1", "c2"} and e.queues["q"].waiting == 2
    assert e.advance(100) == [Overflowed("c1", "q", CALLBACK, "max_wait")]  # c2 is one


def test_an_offer_that_ends_after_max_wait_turns_the_contact_into_a_callback() -> None:
    e = engine(QueueConfig("q", max_wait=30, overflow=CALLBACK))
    agent(e, "a1", available=False)
    contact(e, "c1", 0)
    e.set_agent_state("a1", "available", 25)
    events = e.advance(45)  # the offer times out; the wait ran out meanwhile
    assert Overflowed("c1", "q", CALLBACK, "max_wait") in events
    assert Requeued("c1", "timeout") in events and e.contacts["c1"].state == "queued"


def test_wrapup_holds_the_slot_until_timer_or_end_wrapup() -> None:
    e = engine(QueueConfig("q", wrapup_seconds=10))
    agent(e, "a1")
    contact(e, "c1", 0)
    assert serve(e, "c1", "a1", 5) == [WrapupStarted("c1", "a1", 15)]
    assert e.status("a1") is AgentStatus.WRAPUP
    assert offered(contact(e, "c2", 6)) == [] and offered(e.advance(14.999)) == []
    events = e.advance(15)
    assert events[0] == Released("c1", "a1") and offered(events) == [("c2", "a1")]
    serve(e, "c2", "a1", 16)
    contact(e, "c3", 17)
    assert offered(e.end_wrapup("c2", 18)) == [("c3", "a1")]  # before its timer (26)
    assert e.advance(26) == [] and e.status("a1") is AgentStatus.AVAILABLE


@pytest.mark.parametrize("state", ["queued", "offered", "assigned", "wrapup"])
def test_remove_frees_everything(state: str) -> None:
    e = engine(QueueConfig("q", wrapup_seconds=10))
    agent(e, "a1", available=state != "queued")
    contact(e, "c1", 0)
    if state in ("assigned", "wrapup"):
        e.accept(offer_of(e, "c1", "a1"), 1)
    if state == "wrapup":
        e.complete("c1", 2)
    contact(e, "c2", 3)
    assert e.contacts["c1"].state == state
    events = e.remove("c1", 4)
    assert "c1" not in e.contacts and e.queues["q"].waiting == 1  # c2 only
    if state == "offered":
        assert isinstance(events[0], OfferEnded) and events[0].reason == "withdrawn"
        assert not any(isinstance(ev, Requeued) for ev in events)
    if state in ("assigned", "wrapup"):
        assert events[0] == Released("c1", "a1")
    if state != "queued":
        assert offered(events) == [("c2", "a1")]


# --- agent states -------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["away", "offline"])
def test_agent_leaving_withdraws_its_offers(state: str) -> None:
    e = engine()
    agent(e, "a1", 0)
    agent(e, "a2", 1)
    contact(e, "c1", 2)
    events = e.set_agent_state("a1", state, 3, reason="lunch")
    assert events[0] == AgentChanged("a1", AgentStatus(state), "lunch" if state == "away" else "")
    assert [(ev.agent_id, ev.reason) for ev in events if isinstance(ev, OfferEnded)] == [
        ("a1", "withdrawn")]
    assert offered(events) == [("c1", "a2")] and e.agents["a1"].total == 0


def test_agent_coming_back_gets_the_best_waiting_contact() -> None:
    e = engine()
    agent(e, "a1", available=False)
    contact(e, "c1", 0)
    contact(e, "c2", 1, priority=5)
    assert offered(e.set_agent_state("a1", "available", 2)) == [("c2", "a1")]


# --- restore ------------------------------------------------------------------------------

def test_adopt_puts_a_held_contact_on_the_agent() -> None:
    e = engine()
    agent(e, "a1", capacity={VOICE: 1, CHAT: 1}, voice_exclusive=False)
    assert e.adopt(ContactRequest("c0", VOICE, "q"), "a1", "assigned", 0) == []
    e.adopt(ContactRequest("k0", CHAT, "q"), "a1", "wrapup", 0, wrapup_ends=8)
    assert e.agents["a1"].used == {VOICE: 1, CHAT: 1}
    assert e.status("a1") is AgentStatus.WRAPUP
    assert offered(contact(e, "c1", 1)) == [] and offered(contact(e, "k1", 1, CHAT)) == []
    assert offered(e.advance(8)) == [("k1", "a1")]  # the chat's wrap-up timer ran out
    assert offered(e.complete("c0", 9)) == [("c1", "a1")]
    with pytest.raises(ValueError):
        e.adopt(ContactRequest("c9", VOICE, "q"), "a1", "queued", 10)


# --- once bugs, found by these tests -------------------------------------------------

def test_delay_of_an_agent_added_while_the_contact_waits() -> None:
    e = engine()
    contact(e, "c1", 0)
    agent(e, "a1", 1, profile=(ProfileEntry("q", delay=10),))
    assert offered(e.advance(10)) == [("c1", "a1")]  # nothing, ever: a1 idles forever


def test_sticky_agent_outside_the_profile_is_treated_the_same_free_or_freed() -> None:
    outcomes = []
    for free_at_arrival in (True, False):
        e = engine(QueueConfig("q"), QueueConfig("other"))
        agent(e, "x", queues=("other",), available=free_at_arrival)
        events = contact(e, "c1", 0, steps=(Step(Requirement.of(agent="x"), 30),))
        if not free_at_arrival:
            events = e.set_agent_state("x", "available", 1)
        outcomes.append(offered(events) == [("c1", "x")])
    assert outcomes[0] == outcomes[1]


def test_restored_contact_starts_at_the_step_in_force() -> None:
    e = engine()
    agent(e, "a1")
    events = e.enqueue(ContactRequest("c1", VOICE, "q", 0, 0.0, (skill(4, 10),)), 100)
    assert offered(events) == [("c1", "a1")]


def test_agent_freed_and_contact_widened_at_one_instant() -> None:
    e = engine(QueueConfig("q", wrapup_seconds=19))
    agent(e, "a1", skills={"billing": 1})
    contact(e, "c0", 0)
    serve(e, "c0", "a1", 1)  # wrap-up until 20
    contact(e, "vip", 2, priority=5, steps=(skill(4, 18),))  # widens at 20
    contact(e, "c1", 3)
    assert offered(e.advance(20)) == [("vip", "a1")]  # gets c1 instead


def test_position_counts_a_requeued_contact_once() -> None:
    e = engine()
    agent(e, "a1")
    for i in range(1, 4):
        contact(e, f"c{i}", i)
    e.decline(offer_of(e, "c1", "a1"), 5)  # c1 back in the queue, c2 offered
    assert position(e, "c3") == 2  # c1 then c3


def test_agent_taking_another_contact_of_the_instant_leaves_its_turn_to_the_next() -> None:
    # Found by test_routing_invariants: at 10 both contacts widen; c1 (older) picks a1, idle
    # longest, but a1 takes c2, held for it alone; a0 qualifies for c1 and must get it.
    e = engine()
    agent(e, "a1", 0, capacity={CHAT: 1})
    agent(e, "a0", 1, capacity={CHAT: 1})
    fr = Requirement.of(languages=("fr",))  # nobody: both wait until 10
    contact(e, "c1", 2, CHAT, steps=(Step(fr, 8),))
    contact(e, "c2", 3, CHAT, steps=(Step(fr, 7), Step(Requirement.of(agent="a1"), None)))
    assert sorted(offered(e.advance(10))) == [("c1", "a0"), ("c2", "a1")]
