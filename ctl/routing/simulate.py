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
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ctl.errors import CtlError
from ctl.routing import erlang
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
class _Tally:
    """One queue's figures (or, for "all", the contact's whole journey)."""

    offered: int = 0
    handled: int = 0
    in_sla: int = 0
    abandoned: int = 0
    overflowed: Counter[str] = field(default_factory=Counter)
    answer_waits: list[float] = field(default_factory=list)
    answer_arrivals: list[float] = field(default_factory=list)  # of the same contacts
    waits: list[float] = field(default_factory=list)  # every contact that left, any way


@dataclass(slots=True)
class _AgentClock:
    group: str
    logged_in: bool = False
    held: int = 0  # assigned or in wrap-up
    last: float = 0.0
    staffed: float = 0.0
    busy: float = 0.0


# --- the report ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class QueueReport:
    name: str
    sla_seconds: float | None  # None for "all": each contact's own queue's threshold
    offered: int
    handled: int
    abandoned: int
    overflowed: dict[str, int]  # "reason->destination": count
    waiting_at_end: int
    service_level: float | None  # answered within sla / (handled + abandoned)
    abandon_rate: float | None  # abandoned / offered
    asa: float | None
    avg_wait: float | None
    p90_wait: float | None
    p_wait: float | None  # fraction of handled contacts that waited at all


@dataclass(frozen=True, slots=True)
class GroupReport:
    name: str
    agents: int
    staffed_hours: float
    occupancy: float | None  # time holding a contact / time staffed
    missed_offers: int


@dataclass(frozen=True, slots=True)
class ErlangCheck:
    """A scenario Erlang C describes exactly, and what it predicts."""

    queue: str
    rate_per_hour: float
    aht: float
    agents: int
    predicted: erlang.Figures
    # 95% confidence half-widths of the simulated service level, ASA and P(wait), from
    # the means of 20 batches of consecutive arrivals (None: too few contacts).
    margins: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Report:
    source: str
    seed: int
    duration: float
    warmup: float
    ended: float  # when the last contact was done with, or following them stopped
    queues: list[QueueReport]
    overall: QueueReport
    groups: list[GroupReport]
    occupancy: float | None
    decisions: int
    erlang: ErlangCheck | None
    problems: list[str]  # engine misbehaviour seen during the run

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[no-any-return]

    def render(self) -> str:
        return _render(self)


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
        self.tallies = {q.name: _Tally() for q in scenario.queues}
        self.overall = _Tally()
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
        queues = [_queue_report(name, self.sla[name], t, waiting[name])
                  for name, t in self.tallies.items()]
        overall = _queue_report("all", None, self.overall, sum(waiting.values()))
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
            check = replace(check, margins=_margins(self.tallies[check.queue], self.s.warmup,
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


def erlang_check(s: Scenario) -> ErlangCheck | None:
    """Erlang C's assumptions, if the scenario meets every one: one queue, one stream of
    Poisson arrivals at a constant rate, exponential handle times, nobody gives up or
    overflows, no wrap-up, and identical agents, each taking one contact at a time, all
    there for the whole run and all qualified for every contact."""
    if len(s.queues) != 1 or len(s.arrivals) != 1:
        return None
    q, a = s.queues[0], s.arrivals[0]
    if (a.process != "poisson" or a.rate_per_hour is None or not a.rate_per_hour
            or a.handle.dist != "exponential" or a.patience is not None or a.steps or q.steps
            or q.max_length is not None or q.max_wait is not None or q.wrapup_seconds):
        return None
    agents = 0
    for g in s.agents:
        if g.count == 0 or not any(p.queue == q.name for p in g.profile_entries([q.name])):
            continue
        if (g.capacity.get(a.channel, 0) != 1 or g.ring_delay or g.shift.start
                or g.shift.end is not None
                or any(p.delay for p in g.profile_entries(s.queue_names()))):
            return None
        agents += g.count
    if not agents:
        return None
    return ErlangCheck(q.name, a.rate_per_hour, a.handle.mean, agents,
                       erlang.figures(agents, a.rate_per_hour, a.handle.mean, q.sla_seconds))


def _queue_report(name: str, sla: float | None, t: _Tally, waiting: int) -> QueueReport:
    answered = t.answer_waits
    return QueueReport(
        name, sla, t.offered, t.handled, t.abandoned, dict(sorted(t.overflowed.items())),
        waiting,
        t.in_sla / (t.handled + t.abandoned) if t.handled + t.abandoned else None,
        t.abandoned / t.offered if t.offered else None,
        sum(answered) / len(answered) if answered else None,
        sum(t.waits) / len(t.waits) if t.waits else None,
        _quantile(t.waits, 0.9),
        sum(1 for w in answered if w > 0) / len(answered) if answered else None)


_BATCHES = 20
_T_95 = 2.093  # Student's t, 95% two-sided, 19 degrees of freedom


def _margins(t: _Tally, lo: float, hi: float, sla: float) -> dict[str, float | None]:
    """Batch means: waits of neighbouring contacts are correlated, means of long batches
    of them nearly are not, so their spread gives an honest confidence interval."""
    batches: list[list[float]] = [[] for _ in range(_BATCHES)]
    for arrived, wait in zip(t.answer_arrivals, t.answer_waits, strict=True):
        k = int((arrived - lo) / (hi - lo) * _BATCHES)
        batches[min(max(k, 0), _BATCHES - 1)].append(wait)
    full = [b for b in batches if b]
    out: dict[str, float | None] = {}
    stats: list[tuple[str, Callable[[float], float]]] = [
        ("service_level", lambda w: float(w <= sla)), ("asa", lambda w: w),
        ("p_wait", lambda w: float(w > 0))]
    for name, stat in stats:
        means = [sum(stat(w) for w in b) / len(b) for b in full]
        out[name] = (_T_95 * statistics.stdev(means) / math.sqrt(len(means))
                     if len(means) == _BATCHES else None)
    return out


def _quantile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value that at least a fraction `q` do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _bind(fn: Callable[..., None], *args: Any) -> Callable[[], None]:
    return lambda: fn(*args)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# --- text ---------------------------------------------------------------------------------

def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _secs(v: float | None) -> str:
    return "-" if v is None else ("inf" if math.isinf(v) else f"{v:.1f} s")


def _hours(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n) or "0s"


def _render(r: Report) -> str:
    o = r.overall
    agents = sum(g.agents for g in r.groups)
    lines = [
        f"scenario {r.source or '-'} (seed {r.seed}): {_hours(r.duration)} simulated"
        + (f", figures from {_hours(r.warmup)} on" if r.warmup else ""),
        f"{o.offered} contacts arrived, {agents} agents in {len(r.groups)} group"
        f"{'s' if len(r.groups) != 1 else ''}, {r.decisions} routing decisions",
        "",
        f"{'queue':<12} {'offered':>8} {'handled':>8} {'abandoned':>9} {'overflowed':>10} "
        f"{'SL':>6} {'(within)':>8} {'ASA':>8} {'avg wait':>9} {'p90 wait':>9}",
    ]
    for q in [*r.queues, o]:
        within = "own" if q.sla_seconds is None else f"{q.sla_seconds:g} s"
        lines.append(
            f"{q.name:<12} {q.offered:>8} {q.handled:>8} {_pct(q.abandon_rate):>9} "
            f"{sum(q.overflowed.values()):>10} {_pct(q.service_level):>6} {within:>8} "
            f"{_secs(q.asa):>8} {_secs(q.avg_wait):>9} {_secs(q.p90_wait):>9}")
    if o.waiting_at_end:
        lines.append(f"{o.waiting_at_end} contacts still waited when the run stopped at "
                     f"{_hours(r.ended)} (nobody served them and nothing removed them)")
    overflows = Counter[str]()
    for q in r.queues:
        for where, n in q.overflowed.items():
            overflows[f"{q.name}: {where}"] += n
    if overflows:
        lines += ["", "overflows: " + ", ".join(f"{k} {n}" for k, n in overflows.items())]
    lines += ["", f"{'agent group':<12} {'agents':>6} {'staffed':>9} {'occupancy':>9} "
                  f"{'missed offers':>13}"]
    for g in r.groups:
        lines.append(f"{g.name:<12} {g.agents:>6} {g.staffed_hours:>8.1f}h "
                     f"{_pct(g.occupancy):>9} {g.missed_offers:>13}")
    lines.append(f"{'all':<12} {agents:>6} {sum(g.staffed_hours for g in r.groups):>8.1f}h "
                 f"{_pct(r.occupancy):>9} {sum(g.missed_offers for g in r.groups):>13}")
    e = r.erlang
    if e is not None:
        p, q0, m = e.predicted, r.queues[0], e.margins

        def pm(v: float | None, key: str, fmt: Callable[[float], str]) -> str:
            margin = m.get(key)
            return "" if v is None or margin is None else f"+-{fmt(margin)}"

        lines += [
            "",
            f"Erlang C for this scenario ({e.rate_per_hour:g}/h x {e.aht:g} s = "
            f"{p.erlangs:.2f} erlangs on {e.agents} agents):",
            f"{'':<14} {'simulated':>10} {'(95%)':<9} {'Erlang C':>9}",
            f"{'service level':<14} {_pct(q0.service_level):>10} "
            f"{pm(q0.service_level, 'service_level', lambda v: f'{v:.1%}'):<9} "
            f"{_pct(p.service_level):>9}",
            f"{'ASA':<14} {_secs(q0.asa):>10} {pm(q0.asa, 'asa', lambda v: f'{v:.1f} s'):<9} "
            f"{_secs(p.asa):>9}",
            f"{'P(wait > 0)':<14} {_pct(q0.p_wait):>10} "
            f"{pm(q0.p_wait, 'p_wait', lambda v: f'{v:.1%}'):<9} {_pct(p.p_wait):>9}",
            f"{'p90 wait':<14} {_secs(q0.p90_wait):>10} {'':<9} {_secs(p.p90_wait):>9}",
            f"{'occupancy':<14} {_pct(r.occupancy):>10} {'':<9} {_pct(p.occupancy):>9}",
        ]
    if r.problems:
        lines += ["", "ENGINE PROBLEMS (please report):", *(f"  {p}" for p in r.problems)]
    return "\n".join(lines)
