"""Routing invariants over random sequences of everything that can happen to the engine.

Each rule is one operation a caller, an agent or the clock performs; after every one the
invariants of issue #3 are checked against the engine's whole state.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ctl.errors import CtlError
from ctl.routing.engine import Engine
from ctl.routing.model import (
    VOICE,
    AgentConfig,
    AgentStatus,
    Assigned,
    ContactRequest,
    Event,
    Offered,
    Overflow,
    Overflowed,
    OverflowKind,
    Policy,
    ProfileEntry,
    QueueConfig,
    Released,
    Requirement,
    Step,
)
from ctl.routing.queues import EMPTY, order_key, rank_of

QUEUES = ("q0", "q1", "q2")
SKILLS = ("en", "fr", "billing")
CHANNELS = (VOICE, "chat", "email")

requirements = st.builds(
    Requirement.of,
    st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=2),
    st.lists(st.sampled_from(("en", "fr")), max_size=1).map(tuple),
    st.lists(st.integers(1, 2), max_size=1).map(tuple),
    st.one_of(st.none(), st.none(), st.sampled_from(["a0", "a1", "a2"])),  # sticky / transfer
)


@st.composite
def step_lists(draw: st.DrawFn) -> tuple[Step, ...]:
    reqs = draw(st.lists(requirements, max_size=3))
    ends = sorted(draw(st.lists(st.integers(1, 60), min_size=len(reqs), max_size=len(reqs),
                                unique=True)))
    return tuple(Step(r, float(e)) for r, e in zip(reqs, ends, strict=True))


queue_configs = st.builds(
    QueueConfig,
    name=st.just(""),
    policy=st.sampled_from(list(Policy)),
    max_length=st.one_of(st.none(), st.integers(1, 6)),
    max_wait=st.one_of(st.none(), st.sampled_from([15.0, 40.0])),
    wrapup_seconds=st.sampled_from([0.0, 5.0]),
    offer_timeout=st.sampled_from([10.0, 20.0]),
    ring_count=st.integers(1, 3),
)


@st.composite
def agent_configs(draw: st.DrawFn, agent_id: str) -> AgentConfig:
    queues = draw(st.lists(st.sampled_from(QUEUES), min_size=1, max_size=3, unique=True))
    return AgentConfig(
        id=agent_id,
        skills=draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=3)),
        languages=frozenset(draw(st.lists(st.sampled_from(("en", "fr")), max_size=2))),
        tier=draw(st.integers(1, 2)),
        profile=tuple(ProfileEntry(q, draw(st.integers(1, 2)),
                                   draw(st.sampled_from([0.0, 0.0, 8.0]))) for q in queues),
        capacity={c: draw(st.integers(0, 3)) for c in CHANNELS},
        voice_exclusive=draw(st.booleans()),
        max_misses=draw(st.integers(1, 3)),
    )


class Routing(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.engine = Engine()
        self.serial = 0
        self.gone: set[str] = set()  # left routing, by an event or by remove()
        self.assigned: dict[str, int] = {}
        self.transfers: dict[str, int] = {}
        self.requests: dict[str, ContactRequest] = {}

    @initialize(data=st.data(), n_agents=st.integers(1, 5))
    def setup(self, data: st.DataObject, n_agents: int) -> None:
        for i, name in enumerate(QUEUES):
            cfg = data.draw(queue_configs)
            overflow = data.draw(st.sampled_from(
                [None, Overflow(OverflowKind.TICKET), Overflow(OverflowKind.QUEUE, QUEUES[i - 1]),
                 Overflow(OverflowKind.CALLBACK)]))
            self.engine.configure_queue(QueueConfig(**{**_fields(cfg), "name": name,
                                                       "overflow": overflow}))
        for i in range(n_agents):
            self.apply(self.engine.upsert_agent(data.draw(agent_configs(f"a{i}")), self.now))

    # --- operations -------------------------------------------------------------------

    def apply(self, events: list[Event]) -> None:
        """Record what left routing and check each decision against the state before it."""
        for event in events:
            if isinstance(event, Assigned):
                self.assigned[event.contact_id] = self.assigned.get(event.contact_id, 0) + 1
            elif isinstance(event, Released) or (
                    isinstance(event, Overflowed) and event.contact_id not in self.engine.contacts):
                self.gone.add(event.contact_id)

    def checked(self, events: list[Event], before: dict[str, tuple[Any, ...]]) -> None:
        """No contact waiting since before the operation, untouched by it, was better placed
        for an agent than the contact that agent was just offered."""
        touched = {getattr(e, "contact_id", None) for e in events}
        offered = [e for e in events if isinstance(e, Offered)]
        for offer in offered:
            agent = self.engine.agents[offer.agent_id]
            got = before.get(offer.contact_id)
            for cid, (key, queue, channel, requirement, excluded, queued_at) in before.items():
                live = self.engine.contacts.get(cid)
                if (cid in touched or live is None or live.state != "queued" or got is None
                        or channel != got[2] or offer.agent_id in excluded):
                    continue
                theirs = _rank(agent.config, queue, requirement)
                if (theirs is None or not requirement.admits(agent.config)
                        or self.now - queued_at < theirs[1]):
                    continue
                now_req = self.engine.contacts[offer.contact_id].requirement
                mine = _rank(agent.config, got[1], now_req)
                assert mine is not None
                assert (theirs[0], key) > (mine[0], got[0]), (
                    f"{offer.agent_id} was offered {offer.contact_id} while better {cid} waited")

    def snapshot(self) -> dict[str, tuple[Any, ...]]:
        return {cid: (live.order, live.queue, live.req.channel, live.requirement,
                      set(live.excluded), live.queued_at)
                for cid, live in self.engine.contacts.items() if live.state == "queued"}

    def run(self, op: Any, *args: Any) -> None:
        before = self.snapshot()
        events = op(*args)
        self.apply(events)
        self.checked(events, before)

    @rule(channel=st.sampled_from(CHANNELS), queue=st.sampled_from(QUEUES),
          priority=st.integers(0, 3), steps=step_lists())
    def enqueue(self, channel: str, queue: str, priority: int, steps: tuple[Step, ...]) -> None:
        self.serial += 1
        request = ContactRequest(f"c{self.serial}", channel, queue, priority, self.now, steps)
        self.requests[request.id] = request
        self.run(self.engine.enqueue, request, self.now)

    @rule(data=st.data(), state=st.sampled_from(["available", "available", "away", "offline"]))
    def agent_state(self, data: st.DataObject, state: str) -> None:
        agent = data.draw(st.sampled_from(sorted(self.engine.agents)))
        self.run(self.engine.set_agent_state, agent, state, self.now, "lunch")

    @precondition(lambda self: self.engine.offers)
    @rule(data=st.data(), accept=st.booleans())
    def answer_offer(self, data: st.DataObject, accept: bool) -> None:
        offer = data.draw(st.sampled_from(sorted(self.engine.offers)))
        self.run(self.engine.accept if accept else self.engine.decline, offer, self.now)

    @precondition(lambda self: any(c.state == "assigned" for c in self.engine.contacts.values()))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        ids = sorted(c for c, v in self.engine.contacts.items() if v.state == "assigned")
        self.run(self.engine.complete, data.draw(st.sampled_from(ids)), self.now)

    @precondition(lambda self: any(c.state == "assigned" for c in self.engine.contacts.values()))
    @rule(data=st.data(), queue=st.sampled_from(QUEUES),
          to=st.one_of(st.none(), st.sampled_from(["a0", "a1", "a2"])))
    def transfer(self, data: st.DataObject, queue: str, to: str | None) -> None:
        ids = sorted(c for c, v in self.engine.contacts.items() if v.state == "assigned")
        contact = data.draw(st.sampled_from(ids))
        steps = (Step(Requirement(agent=to), 10.0),) if to else ()
        self.transfers[contact] = self.transfers.get(contact, 0) + 1
        self.run(self.engine.transfer, contact, queue, self.now, steps)

    @precondition(lambda self: any(c.state == "assigned" for c in self.engine.contacts.values()))
    @rule(data=st.data(), by=st.sampled_from(["a0", "a1", "a2", "a3", "a4"]))
    def take_over(self, data: st.DataObject, by: str) -> None:
        """A supervisor takes a contact from its agent: it moves whole, or not at all."""
        ids = sorted(c for c, v in self.engine.contacts.items() if v.state == "assigned")
        contact = data.draw(st.sampled_from(ids))
        live = self.engine.contacts[contact]
        held_by, channel = live.agent, live.req.channel
        agent = self.engine.agents.get(by)
        if agent is None or by == held_by or not agent.has_room(channel):
            with pytest.raises(CtlError):
                self.engine.take_over(contact, by, self.now)
            return
        self.run(self.engine.take_over, contact, by, self.now)
        assert live.agent == by and contact in agent.contacts
        assert held_by is not None and contact not in self.engine.agents[held_by].contacts

    @precondition(lambda self: self.engine.contacts)
    @rule(data=st.data())
    def customer_leaves(self, data: st.DataObject) -> None:
        contact = data.draw(st.sampled_from(sorted(self.engine.contacts)))
        self.run(self.engine.remove, contact, self.now)
        self.gone.add(contact)

    @rule(dt=st.sampled_from([0.5, 1.0, 5.0, 8.0, 10.0, 30.0]))
    def clock(self, dt: float) -> None:
        # One instant at a time, so each decision is checked against the state just before.
        due = self.engine.next_due()
        self.now = due if due is not None and due <= self.now + dt else self.now + dt
        self.run(self.engine.advance, self.now)

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def agents_within_capacity(self) -> None:
        for agent in self.engine.agents.values():
            cfg = agent.config
            for channel, used in agent.used.items():
                assert 0 <= used <= cfg.capacity.get(channel, 0), (cfg.id, channel, used)
            if cfg.voice_exclusive and agent.used.get(VOICE, 0):
                assert agent.total == agent.used[VOICE], (cfg.id, agent.used)
            held = [c for c in self.engine.contacts.values() if c.agent == cfg.id
                    and c.state in ("assigned", "wrapup")]
            offered = [o for o in self.engine.offers.values() if o.agent_id == cfg.id]
            assert agent.total == len(held) + len(offered)

    @invariant()
    def offers_only_to_available_agents(self) -> None:
        for offer in self.engine.offers.values():
            assert self.engine.agents[offer.agent_id].state is AgentStatus.AVAILABLE
            live = self.engine.contacts[offer.contact_id]
            assert live.state == "offered" and offer.id in live.offers

    @invariant()
    def no_contact_lost_or_assigned_twice(self) -> None:
        # Once per stay in a queue: a transferred contact may be assigned again.
        assert all(n <= 1 + self.transfers.get(c, 0) for c, n in self.assigned.items())
        live = set(self.engine.contacts)
        assert not live & self.gone
        assert live | self.gone == set(self.requests), set(self.requests) - live - self.gone
        for name, queue in self.engine.queues.items():
            waiting = [c for c in self.engine.contacts.values()
                       if c.queue == name and c.state in ("queued", "offered")]
            assert queue.waiting == len(waiting), name

    @invariant()
    def settled(self) -> None:
        """No routable agent qualifies for a contact that waits."""
        for live in self.engine.contacts.values():
            if live.state != "queued":
                continue
            for agent in self.engine.agents.values():
                rank = _rank(agent.config, live.queue, live.requirement)
                assert not (rank is not None and agent.routable(live.req.channel)
                            and agent.config.id not in live.excluded
                            and live.requirement.admits(agent.config)
                            and self.now - live.queued_at >= rank[1]), (
                    f"{agent.config.id} is free for {live.req.id}")

    @invariant()
    def steps_expire_exactly_on_time(self) -> None:
        for live in self.engine.contacts.values():
            if live.state not in ("queued", "offered"):
                continue
            expired = sum(1 for s in live.req.steps if s.expires_after is not None
                          and live.req.enqueued_at + s.expires_after <= self.now)
            assert live.step == expired, (live.req.id, live.step, expired, self.now)

    @invariant()
    def shelves_hold_exactly_the_heads(self) -> None:
        """Each shelf is sorted and lists exactly its non-empty buckets under their heads'
        order; each agent's remembered shelves are those of the sets of skills it has."""
        contacts = self.engine.contacts
        for queue in self.engine.queues.values():
            for shelves in queue.shelves.values():
                for names, shelf in shelves.items():
                    orders = [bucket.listed for bucket in shelf.buckets]
                    assert orders == sorted(orders)
                    assert shelf.best == (shelf.buckets[0].rank if shelf.buckets else EMPTY)
                    listed = {id(bucket): bucket.listed for bucket in shelf.buckets}
                    for bucket in queue.buckets.values():
                        if bucket.shelf is not shelf:
                            continue
                        head = bucket.head()
                        assert bucket.top is head
                        assert listed.get(id(bucket)) == (None if head is None else head.order)
                        assert bucket.rank == (EMPTY if head is None else rank_of(head.order))
                        assert {s for s, _ in bucket.requirement.skills} == names
            for bucket in queue.buckets.values():
                held = [live for live in contacts.values() if live.bucket is bucket]
                assert sorted(map(id, bucket.contacts())) == sorted(map(id, held))
                assert bucket.size == len(held)
                assert {live.order for live in held} <= set(bucket.heap.orders())
        for agent in self.engine.agents.values():
            if agent._derived_from is not agent.config:
                continue  # re-derived at its next walk
            walks = [(entry.queue, channel, made, mine)
                     for entry, by_channel in zip(agent._profile, agent.walks, strict=True)
                     for channel, (made, mine) in by_channel.items()]
            for queue_name, channel, made, mine in walks:
                queue = self.engine.queues[queue_name]
                has = agent.config.skills.keys()
                if made >= 0 and made != len(queue.shelves[channel]):
                    continue  # stale: brought up to date at its next walk
                assert sorted(map(id, mine)) == sorted(
                    id(shelf) for names, shelf in queue.shelves[channel].items() if names <= has)

def _rank(agent: AgentConfig, queue: str, requirement: Requirement
          ) -> tuple[int, float] | None:
    """(priority, delay) of a queue's contacts for an agent; None: not its queue. A contact
    for this agent alone comes first, at once, whatever its routing profile says."""
    if requirement.agent == agent.id:
        return 0, 0.0
    entry = next((p for p in agent.profile if p.queue == queue), None)
    return None if entry is None else (entry.priority, entry.delay)


def _fields(cfg: QueueConfig) -> dict[str, Any]:
    return {f: getattr(cfg, f) for f in QueueConfig.__dataclass_fields__}


Routing.TestCase.settings = settings(
    max_examples=int(os.environ.get("ROUTING_EXAMPLES", "300")), stateful_step_count=60,
    deadline=None, suppress_health_check=[HealthCheck.too_slow])
test_routing_invariants = Routing.TestCase



_PLACES = st.tuples(st.integers(-10**20, 10**20) | st.integers(0, 3),
                    st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, 5e-324, -5e-324]),
                    st.integers(0, 2**64 - 1))


@given(st.lists(_PLACES, min_size=2, max_size=20))
def test_order_key_sorts_like_priority_then_time_then_sequence(
        places: list[tuple[int, float, int]]) -> None:
    """A contact's order is one int (queues.order_key): it must sort exactly as the tuple
    (-priority, enqueued_at, sequence) it stands for, ties included (-0.0 equals 0.0)."""
    keys = [(order_key(*p), (-p[0], p[1], p[2])) for p in places]
    for a, ta in keys:
        for b, tb in keys:
            assert (a < b) == (ta < tb) and (a == b) == (ta == tb), (ta, tb)
            # Walks compare ranks first (native ints), orders on a tie: a rank must never
            # sort against its order, nor reach EMPTY (an empty shelf's).
            assert rank_of(a) <= rank_of(b) if a < b else rank_of(a) >= rank_of(b)
            assert rank_of(a) < EMPTY
