"""`ctl simulate`: a discrete-event simulation of a contact center through the real engine.

A virtual clock jumps from one happening to the next. The simulation keeps its own heap
of what the outside world does (contacts arrive, agents finish handling, callers give up,
shifts start and end) and interleaves it with the engine's own timers (`next_due` and
`advance`: offer timeouts, max waits, routing steps, wrap-up). Agents accept an offer at
once, or after their group's ring delay. Every decision is the engine's.

Statistics cover the contacts that arrive after the warm-up; agents' time is measured
between the end of the warm-up and the end of the run. When arrivals stop, the contacts
still in the system are followed until they are served, give up or overflow away.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ctl.errors import CtlError
from ctl.routing.engine import Engine
from ctl.routing.model import (
    AgentChanged,
    AgentStatus,
    Assigned,
    ContactRequest,
    Event,
    Offered,
    OfferEnded,
    Overflowed,
    OverflowKind,
    Released,
)
from ctl.routing.scenario import ArrivalSpec, Scenario, queue_config, steps, tick
from ctl.routing.simreport import (
    GroupReport,
    Report,
    Tally,
    erlang_check,
    margins,
    queue_report,
)

# What happens first when several things fall on one instant (the engine's own timers
# come before all of these): agents log in, then calls end, then ringing phones are
# picked up, then callers give up, then new contacts arrive, then agents log out.
_SHIFT_ON, _DONE, _ACCEPT, _PATIENCE, _ARRIVAL, _SHIFT_OFF = range(6)


_SAME_INSTANT = 1_000_000


class SimulationError(CtlError):
    """The engine did something the simulation cannot account for: an engine bug."""


@dataclass(slots=True)
class _Contact:
    id: str
    arrived: float
    handle: float
    patience: float | None
    counted: bool  # arrived after the warm-up
    origin: str  # the queue it arrived in
    queue: str  # the queue it waits in now
    entered: float  # when it entered that queue
    answered: float | None = None
    done: bool = False
    called_back: bool = False  # its queue overflowed to a callback: no caller to give up


@dataclass(slots=True)
class _AgentClock:
    group: str
    logged_in: bool = False
    held: int = 0  # assigned or in wrap-up
    last: float = 0.0
    staffed: float = 0.0
    busy: float = 0.0


# --- the run ------------------------------------------------------------------------------

def simulate(scenario: Scenario, seed: int | None = None, source: str | Path = "") -> Report:
    return Simulation(scenario, scenario.seed if seed is None else seed, str(source)).run()


class Simulation:
    def __init__(self, scenario: Scenario, seed: int, source: str = "") -> None:
        self.s = scenario
        self.seed = seed
        self.source = source
        self.engine = Engine(queue_config(q) for q in scenario.queues)
        self.sla = {q.name: q.sla_seconds for q in scenario.queues}
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.contacts: dict[str, _Contact] = {}
        self.tallies = {q.name: Tally() for q in scenario.queues}
        self.overall = Tally()
        self.clocks: dict[str, _AgentClock] = {}
        self.ring_delay: dict[str, float] = {}
        self.missed: Counter[str] = Counter()
        self.problems: list[str] = []
        self._seen: set[str] = set()
        self._moved: list[_Contact] = []
        self._serial = itertools.count(1)

    # --- scheduling ---------------------------------------------------------------------

    def _at(self, when: float, rank: int, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, rank, next(self._seq), action))

    def run(self) -> Report:
        s, engine = self.s, self.engine
        names = s.queue_names()
        for group in s.agents:
            for i in range(1, group.count + 1):
                agent_id = f"{group.name}-{i}"
                self.clocks[agent_id] = _AgentClock(group.name)
                self.ring_delay[agent_id] = tick(group.ring_delay)
                self._apply(engine.upsert_agent(group.agent(agent_id, names), 0.0))
                self._at(tick(group.shift.start), _SHIFT_ON, _bind(self._shift, agent_id, True))
                if group.shift.end is not None:
                    self._at(tick(group.shift.end), _SHIFT_OFF,
                             _bind(self._shift, agent_id, False))
        for i, stream in enumerate(s.arrivals):
            self._start_stream(i, stream)
        heap = self._heap
        stop = s.duration + s.drain
        same, last = 0, -1.0
        while True:
            due = engine.next_due()
            if heap and (due is None or heap[0][0] < due):
                if heap[0][0] > stop:
                    break
                when, _, _, action = heapq.heappop(heap)
                self.now = when
                action()
            elif due is not None and due <= stop:
                self.now = due
                self._apply(engine.advance(due))
            else:
                break
            same = same + 1 if self.now == last else 0
            last = self.now
            if same > _SAME_INSTANT:
                raise SimulationError(f"t={self.now}: more than {_SAME_INSTANT} steps at one "
                                      "instant: the engine keeps itself busy (an engine bug)")
        return self._report()

    def _start_stream(self, index: int, stream: ArrivalSpec) -> None:
        base = f"{self.seed}/{index}"
        gaps = random.Random(f"{base}/arrivals")
        handle = stream.handle.sampler(random.Random(f"{base}/handle"))
        patience = (stream.patience.sampler(random.Random(f"{base}/patience"))
                    if stream.patience else None)
        # No steps of its own: the queue's, as for a contact the controller enqueues.
        routing = steps(stream.steps or next(q.steps for q in self.s.queues
                                             if q.name == stream.queue))
        duration = self.s.duration

        def next_time(t: float) -> float | None:
            """The next arrival after `t` (None: none before the end). The rate is constant
            within an interval and Poisson arrivals are memoryless, so a draw that crosses
            into the next interval is dropped and drawn again from its start."""
            k = int(t // stream.interval) if stream.rates is not None else 0
            while t < duration:
                rate = stream.rate_at(k) / 3600.0
                end = (k + 1) * stream.interval if stream.rates is not None else math.inf
                if rate > 0:
                    gap = gaps.expovariate(rate) if stream.process == "poisson" else 1 / rate
                    if t + gap < end:
                        return tick(t + gap)
                k, t = k + 1, end
            return None

        def arrive() -> None:
            now = self.now
            cid = f"c{next(self._serial)}"
            c = _Contact(cid, now, handle(), patience() if patience else None,
                         now >= self.s.warmup, stream.queue, stream.queue, now)
            self.contacts[cid] = c
            if c.counted:
                self.overall.offered += 1
                self.tallies[c.queue].offered += 1
            if c.patience is not None:
                self._at(now + c.patience, _PATIENCE, _bind(self._give_up, cid))
            after = next_time(now)
            if after is not None and after < duration:
                self._at(after, _ARRIVAL, arrive)
            request = ContactRequest(cid, stream.channel, stream.queue, stream.priority, now,
                                     routing)
            self._apply(self.engine.enqueue(request, now))

        if not any(stream.rate_at(k) for k in range(len(stream.rates or (0,)))):
            return
        first = next_time(0.0)
        if first is not None and first < duration:
            self._at(first, _ARRIVAL, arrive)

    # --- what the outside world does ------------------------------------------------------

    def _shift(self, agent_id: str, on: bool) -> None:
        clock = self.clocks[agent_id]
        self._account(clock)
        clock.logged_in = on
        state = AgentStatus.AVAILABLE if on else AgentStatus.OFFLINE
        self._apply(self.engine.set_agent_state(agent_id, state, self.now, "shift"))

    def _give_up(self, cid: str) -> None:
        c = self.contacts.get(cid)
        if c is None or c.done or c.answered is not None or c.called_back:
            return
        if cid not in self.engine.contacts:
            self._problem(f"contact {cid} waits in {c.queue} by the simulation's account but "
                          "the engine no longer holds it")
            return
        self._leave(c, "abandoned")
        self._apply(self.engine.remove(cid, self.now))

    def _accept(self, offer_id: str) -> None:
        if offer_id in self.engine.offers:  # else taken elsewhere, withdrawn or timed out
            self._apply(self.engine.accept(offer_id, self.now))

    def _finish(self, cid: str) -> None:
        if cid in self.engine.contacts:
            self._apply(self.engine.complete(cid, self.now))

    # --- what the engine decided ----------------------------------------------------------

    def _apply(self, events: list[Event]) -> None:
        pending = list(reversed(events))
        while pending:
            event = pending.pop()
            more = self._on(event)
            if more:
                pending.extend(reversed(more))
        for c in self._moved:
            if not c.done and c.answered is None and c.id not in self.engine.contacts:
                # Overflowed to a queue, yet not admitted there: a loop of overflows
                # longer than the engine follows.
                self._leave(c, "overflowed", "overflow_loop")
        self._moved.clear()

    def _on(self, event: Event) -> list[Event]:
        now = self.now
        if isinstance(event, Offered):
            delay = self.ring_delay.get(event.agent_id, 0.0)
            if delay <= 0:
                # Ring-all: an offer of the same batch may be gone already.
                if event.offer_id in self.engine.offers:
                    return self.engine.accept(event.offer_id, now)
                return []
            self._at(now + delay, _ACCEPT, _bind(self._accept, event.offer_id))
        elif isinstance(event, Assigned):
            c = self.contacts[event.contact_id]
            if c.answered is not None or c.done:
                self._problem(f"contact {c.id} was assigned twice ({event.agent_id})")
                return []
            self._leave(c, "handled")
            c.answered = now
            clock = self.clocks[event.agent_id]
            self._account(clock)
            clock.held += 1
            self._at(now + c.handle, _DONE, _bind(self._finish, c.id))
        elif isinstance(event, Released):
            clock = self.clocks[event.agent_id]
            self._account(clock)
            clock.held -= 1
        elif isinstance(event, Overflowed):
            c = self.contacts[event.contact_id]
            ov = event.overflow
            if ov is not None and ov.kind is OverflowKind.QUEUE:
                self._leave(c, "overflowed", f"{event.reason}->queue:{ov.target}", final=False)
                c.queue, c.entered = ov.target, now
                if c.counted:
                    self.tallies[c.queue].offered += 1
                self._moved.append(c)
            elif ov is not None and ov.kind is OverflowKind.CALLBACK:
                # Not a departure: it waits on in its place, then counts as handled.
                c.called_back = True
            else:
                dest = ov.kind.value if ov is not None else "refused"
                self._leave(c, "overflowed", f"{event.reason}->{dest}")
        elif isinstance(event, OfferEnded) and event.reason == "timeout":
            self.missed[self.clocks[event.agent_id].group] += 1
        elif (isinstance(event, AgentChanged) and event.status is AgentStatus.AWAY
              and event.reason == "missed"):
            self._problem(f"agent {event.agent_id} was set away after missing offers")
        return []

    def _leave(self, c: _Contact, outcome: str, where: str = "", final: bool = True) -> None:
        """`c` leaves its current queue: answered, abandoned, or overflowed."""
        now = self.now
        c.done = final and outcome != "handled"
        if not c.counted:
            return
        t, total = self.tallies[c.queue], self.overall
        wait, journey = now - c.entered, now - c.arrived
        t.waits.append(wait)
        if outcome == "handled":
            t.handled += 1
            t.answer_waits.append(wait)
            t.answer_arrivals.append(c.arrived)
            t.in_sla += wait <= self.sla[c.queue]
            total.handled += 1
            total.answer_waits.append(journey)
            total.in_sla += journey <= self.sla[c.origin]
        elif outcome == "abandoned":
            t.abandoned += 1
            total.abandoned += 1
        else:
            t.overflowed[where] += 1
            if final:
                total.overflowed[where] += 1
        if final:
            total.waits.append(journey)

    def _account(self, clock: _AgentClock) -> None:
        """Add the time since the agent's last change, within the measured window."""
        lo, hi = self.s.warmup, self.s.duration
        span = max(0.0, min(self.now, hi) - max(clock.last, lo))
        if clock.logged_in or clock.held:
            clock.staffed += span
        if clock.held:
            clock.busy += span
        clock.last = self.now

    def _problem(self, text: str) -> None:
        if text not in self._seen:
            self._seen.add(text)
            self.problems.append(f"t={self.now:.1f}: {text}")

    # --- the figures ----------------------------------------------------------------------

    def _report(self) -> Report:
        ended = self.now
        self.now = max(self.now, self.s.duration)  # agents stayed on until the end
        for clock in self.clocks.values():
            self._account(clock)
        self._check_settled()
        waiting: Counter[str] = Counter()
        for c in self.contacts.values():
            if c.counted and not c.done and c.answered is None:
                waiting[c.queue] += 1
        queues = [queue_report(name, self.sla[name], t, waiting[name])
                  for name, t in self.tallies.items()]
        overall = queue_report("all", None, self.overall, sum(waiting.values()))
        groups = []
        for g in self.s.agents:
            clocks = [c for c in self.clocks.values() if c.group == g.name]
            staffed = sum(c.staffed for c in clocks)
            groups.append(GroupReport(g.name, g.count, staffed / 3600,
                                      sum(c.busy for c in clocks) / staffed if staffed else None,
                                      self.missed[g.name]))
        staffed = sum(c.staffed for c in self.clocks.values())
        occupancy = sum(c.busy for c in self.clocks.values()) / staffed if staffed else None
        check = erlang_check(self.s)
        if check is not None:
            check = replace(check, margins=margins(self.tallies[check.queue], self.s.warmup,
                                                   self.s.duration, self.sla[check.queue]))
        return Report(self.source, self.seed, self.s.duration, self.s.warmup, ended, queues,
                      overall, groups, occupancy, self.engine.decisions, check, self.problems)

    def _check_settled(self) -> None:
        """Nothing may wait at the end while an agent is free for it."""
        for live in self.engine.contacts.values():
            if live.state != "queued":
                continue
            for agent in self.engine.agents.values():
                entry = next((p for p in agent.config.profile if p.queue == live.queue), None)
                if (entry is not None and agent.routable(live.req.channel)
                        and agent.config.id not in live.excluded
                        and live.requirement.admits(agent.config)):
                    self._problem(f"contact {live.req.id} still waits in {live.queue} at the "
                                  f"end while agent {agent.config.id} is free for it")
                    break


def _bind(fn: Callable[..., None], *args: Any) -> Callable[[], None]:
    return lambda: fn(*args)
