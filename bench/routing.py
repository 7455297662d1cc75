"""Routing decisions per second and decision latency: the engine against a scan-everything
baseline, with 10,000 agents and 100,000 waiting contacts across 50 skills (issue #3).

    .venv/bin/python -m bench.routing [--agents 10000] [--contacts 100000] [--skills 50]
                                      [--decisions N] [--baseline-decisions 200] [--seed S]

A seeded scenario (5 queues, agents with 1-4 skills and a routing profile over 1-3 queues,
voice/chat/email capacities, contacts that require one or two skills, some through
routing steps that expire) is brought to a saturated steady state: every agent busy,
`--contacts` waiting. Then agents finish contacts and at once take the next one while new
contacts arrive to keep the backlog's size; each operation that makes a decision (an
offer) is timed. The baseline, from the same starting state and in lockstep with the
engine for its first decisions, makes each one by scanning every waiting contact; both must
choose alike. The engine alone runs again with 10x and 100x fewer waiting contacts to show
how its cost grows with the backlog. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import math
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ctl.routing as routing
from bench.routing_scenario import ScanRouter, Scenario
from ctl import runtime
from ctl.routing.engine import Engine
from ctl.routing.model import (
    AgentStatus,
    ContactRequest,
    Event,
    Offered,
)

TARGET_RATE = 100_000.0  # decisions/s
TARGET_P99_MS = 1.0
BACKLOG_SPAN = 3600.0  # the initial backlog arrived over the hour before the measurement


# --- the engine behind the same interface -----------------------------------------------

class EngineRouter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.offer_of: dict[str, str] = {}  # contact -> its pending offer

    def made(self, events: list[Event]) -> list[tuple[str, str]]:
        """(contact, agent) of each offer among the events: read outside the timed call."""
        made = []
        for e in events:
            if isinstance(e, Offered):
                self.offer_of[e.contact_id] = e.offer_id
                made.append((e.contact_id, e.agent_id))
        return made

    def enqueue(self, req: ContactRequest, now: float) -> list[Event]:
        return self.engine.enqueue(req, now)

    def advance(self, now: float) -> list[Event]:
        return self.engine.advance(now)

    def accept(self, contact_id: str, agent_id: str, now: float) -> None:
        self.engine.accept(self.offer_of.pop(contact_id), now)

    def mirror(self, made: list[tuple[str, str]]) -> None:
        raise NotImplementedError  # the engine is the reference

    def channel_of(self, contact_id: str) -> str:
        return self.engine.contacts[contact_id].req.channel

    def complete(self, contact_id: str, now: float) -> list[Event]:
        return self.engine.complete(contact_id, now)


Router = EngineRouter | ScanRouter


# --- driving the routers through the steady state --------------------------------------

@dataclass
class Run:
    decisions: list[tuple[str, str, str]] = field(default_factory=list)  # (op, contact, agent)
    decision_ns: list[int] = field(default_factory=list)  # each op that made decisions
    decision_cpu_ns: int = 0  # the same calls' CPU time (this thread's)
    complete_ns: list[int] = field(default_factory=list)  # those of them that were complete()
    other_ns: int = 0  # ops that made none (accepts, arrivals, advances)
    virtual: float = 0.0  # simulated seconds covered
    gc_ms: list[float] = field(default_factory=list)  # full collections during the run
    gc_decision_ms: float = 0.0  # the part of them that fell in operations making decisions

    @property
    def count(self) -> int:
        return len(self.decisions)

    def rate(self) -> float:
        return self.count / (sum(self.decision_ns) / 1e9) if self.decision_ns else math.nan

    def ms(self, p: float, ns: list[int] | None = None) -> float:
        return percentile(self.decision_ns if ns is None else ns, p) / 1e6

    def cpu_rate(self) -> float:
        """Decisions per second of this thread's CPU time in the calls that made them:
        what the wall-clock rate would be on a machine with nothing else to run."""
        return self.count / (self.decision_cpu_ns / 1e9) if self.decision_cpu_ns else math.nan

    def cycle_rate(self) -> float:
        """Decisions per second of every routing call, accepts and arrivals included."""
        spent = sum(self.decision_ns) + self.other_ns
        return self.count / (spent / 1e9) if spent else math.nan


class Driver:
    """Completions in time order: each one's agent takes the next contact, which it accepts
    at once, and a new contact arrives, so the backlog keeps its size.

    With a second router (the baseline), both get every operation in lockstep: choices
    made when an agent frees up must be the same; those the engine makes on arrival or
    when a routing step expires (an agent with room nothing fitted until then), a path
    the baseline does not implement, are copied to it."""

    def __init__(self, scenario: Scenario, handle_seed: int) -> None:
        self.scenario = scenario
        self.busy: list[tuple[float, int, str]] = []  # (ends, sequence, contact)
        self.seq = 0
        self.rng = random.Random(handle_seed)
        self.now = 0.0
        self.mirrored = 0

    def took(self, routers: Sequence[Router], made: list[tuple[str, str]], now: float) -> None:
        for contact_id, agent_id in made:
            for router in routers:
                router.accept(contact_id, agent_id, now)
            channel = routers[0].channel_of(contact_id)
            ends = now + self.scenario.handle_time(channel, self.rng)
            heapq.heappush(self.busy, (ends, self.seq, contact_id))
            self.seq += 1

    def run(self, routers: Sequence[Router], decisions: int) -> list[Run]:
        runs = [Run() for _ in routers]
        clock, cpu = time.perf_counter_ns, time.thread_time_ns
        started = self.now

        def op(name: str, now: float, method: str, *args: Any) -> list[tuple[str, str]]:
            outcomes = []
            for router, run in zip(routers, runs, strict=True):
                call = getattr(router, method)
                collections = len(runs[0].gc_ms)
                c0 = cpu()
                t0 = clock()
                raw = call(*args)
                spent = clock() - t0
                cpu_spent = cpu() - c0
                made: list[tuple[str, str]] = router.made(raw)
                if made:
                    run.decision_cpu_ns += cpu_spent
                    run.gc_decision_ms += sum(runs[0].gc_ms[collections:])
                    run.decision_ns.append(spent)
                    if name == "complete":
                        run.complete_ns.append(spent)
                    run.decisions.extend((name, c, a) for c, a in made)
                else:
                    run.other_ns += spent
                outcomes.append(made)
            if len(routers) > 1:
                mine, theirs = outcomes
                if name == "complete":
                    assert mine == theirs, (
                        f"decision {runs[0].count - len(mine)}: the engine chose {mine}, "
                        f"the baseline {theirs}")
                else:
                    assert not theirs
                    routers[1].mirror(mine)
                    runs[1].decisions.extend((name, c, a) for c, a in mine)
                    self.mirrored += len(mine)
            self.took(routers, outcomes[0], now)
            return outcomes[0]

        def collected(phase: str, info: dict[str, int]) -> None:
            if info["generation"] == 2:
                if phase == "start":
                    runs[0].gc_ms.append(time.perf_counter())
                else:
                    runs[0].gc_ms[-1] = 1000 * (time.perf_counter() - runs[0].gc_ms[-1])

        first = routers[0]
        assert isinstance(first, EngineRouter), "the engine leads, a baseline follows"
        engine = first.engine
        gc.callbacks.append(collected)
        try:
            while runs[0].count < decisions and self.busy:
                ends, _, contact_id = heapq.heappop(self.busy)
                now = self.now = max(self.now, ends)
                # Up to the completion one instant at a time: an offer made when a step
                # expires is accepted then, as an agent would, not after it timed out.
                while (due := engine.next_due()) is not None and due < now:
                    op("advance", due, "advance", due)
                op("advance", now, "advance", now)
                op("complete", now, "complete", contact_id, now)
                op("arrival", now, "enqueue", self.scenario.contact(now), now)
        finally:
            gc.callbacks.remove(collected)
        for run in runs:
            run.virtual = self.now - started
        return runs


def waiting(engine: Engine) -> int:
    return sum(q.waiting for q in engine.queues.values())


def build(scenario: Scenario, backlog: int, driver: Driver) -> tuple[Engine, EngineRouter]:
    """Agents offline, `backlog` contacts arrive over an hour, the agents log in and fill
    up, and arrivals top the backlog up again: a saturated, settled engine."""
    engine = Engine(scenario.queues)
    router = EngineRouter(engine)
    for agent in scenario.agents:
        engine.upsert_agent(agent, -BACKLOG_SPAN)
    for i in range(backlog):
        now = -BACKLOG_SPAN + BACKLOG_SPAN * i / backlog
        engine.advance(now)
        req = scenario.contact(now)
        engine.enqueue(req, now)
    now = driver.now = 0.0
    engine.advance(now)
    for agent in scenario.agents:
        events = engine.set_agent_state(agent.id, AgentStatus.AVAILABLE, now)
        driver.took([router], router.made(events), now)
    while waiting(engine) < backlog:
        req = scenario.contact(now)
        driver.took([router], router.made(router.enqueue(req, now)), now)
    return engine, router


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: p99 of 100 values is the 99th smallest, not an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --- the benchmark ----------------------------------------------------------------------

@dataclass
class Size:
    backlog: int
    engine: Run
    setup_s: float
    rss_mib: float  # RSS growth while building the engine and running it
    idle_agents: int  # agents with room on some channel after settling (nothing fits them)
    baseline: Run | None = None  # the lockstep phase: the baseline's figures
    lockstep: Run | None = None  # the lockstep phase: the engine's figures
    mirrored: int = 0  # lockstep decisions the baseline copied from the engine


def measure(args: argparse.Namespace, backlog: int, with_baseline: bool) -> Size:
    scenario = Scenario(args.agents, args.skills, args.seed)
    driver = Driver(scenario, args.seed + 2)
    gc.collect()
    rss0 = _rss_kib()
    t0 = time.perf_counter()
    engine, router = build(scenario, backlog, driver)
    setup_s = time.perf_counter() - t0
    idle = sum(1 for a in engine.agents.values()
               if any(a.routable(c) for c in a.config.capacity))
    # What the routing service does once it has rebuilt its state (the same function):
    # without it, a full collection walks every object of the backlog (~1 s at 100,000
    # contacts) in whatever operation happens to trigger it.
    runtime.settle()
    try:
        base = lock = None
        if with_baseline:
            scan = ScanRouter(scenario.agents)
            scan.take_over(engine)
            lock, base = driver.run([router, scan], args.baseline_decisions)
            del scan
            gc.collect()
        run, = driver.run([router], args.decisions)
    finally:
        gc.unfreeze()
    return Size(backlog, run, setup_s, (_rss_kib() - rss0) / 1024, idle, base, lock,
                driver.mirrored)


def memory(args: argparse.Namespace) -> float:
    """MiB the engine holds (tracemalloc) with `--contacts` waiting and the agents busy."""
    scenario = Scenario(args.agents, args.skills, args.seed)
    gc.collect()
    tracemalloc.start()
    try:
        engine, _ = build(scenario, args.contacts, Driver(scenario, args.seed + 2))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del engine
    return held / 2**20


def _row(cells: Sequence[str]) -> str:
    widths = (26, 8, 9, 11, 8, 8, 8, 11)
    return " ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(
        zip(cells, widths, strict=True)))


def _line(label: str, backlog: int, run: Run, ns: list[int] | None = None) -> str:
    ns = run.decision_ns if ns is None else ns
    count = run.count if ns is run.decision_ns else sum(
        1 for d in run.decisions if d[0] == "complete")
    rate = count / (sum(ns) / 1e9)
    cycle = f"{run.cycle_rate():,.0f}" if ns is run.decision_ns else "-"
    return _row([label, f"{backlog:,}", f"{count:,}", f"{rate:,.0f}", f"{run.ms(50, ns):.3f}",
                 f"{run.ms(99, ns):.3f}", f"{max(ns) / 1e6:.2f}", cycle])


def _complete_rate(run: Run) -> float:
    count = sum(1 for d in run.decisions if d[0] == "complete")
    return count / (sum(run.complete_ns) / 1e9)


def report(sizes: list[Size], held_mib: float, args: argparse.Namespace) -> list[str]:
    big, small = sizes[0], sizes[-1]
    base, lock = big.baseline, big.lockstep
    assert base is not None and lock is not None
    print(f"\n{args.agents:,} agents, {len(Scenario(1, args.skills, 0).queues)} queues, "
          f"{args.skills} skills, seed {args.seed}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, engine core "
          f"{'compiled (mypyc)' if routing.COMPILED else 'from its sources'}")
    print(_row(["", "", "", "", "decision latency ms", "", "", "decisions/s"]))
    print(_row(["router", "waiting", "decisions", "decisions/s", "p50", "p99", "max",
                "all calls"]))
    print(_line("baseline: agent frees", big.backlog, base, base.complete_ns))
    print(_line("engine: the same ones", big.backlog, lock, lock.complete_ns))
    for s in sizes:
        print(_line("engine: agent frees", s.backlog, s.engine, s.engine.complete_ns))
    for s in sizes:
        print(_line("engine: every decision", s.backlog, s.engine))
    speedup = _complete_rate(big.engine) / _complete_rate(base)
    ratio50 = base.ms(50, base.complete_ns) / big.engine.ms(50, big.engine.complete_ns)
    ratio99 = base.ms(99, base.complete_ns) / big.engine.ms(99, big.engine.complete_ns)
    print(_row(["engine/baseline, agent frees", "", "", f"{speedup:,.0f}x", f"{ratio50:,.0f}x",
                f"{ratio99:,.0f}x", "", ""]))
    print(f"  lockstep: {base.count} decisions, the same in both; the {len(base.complete_ns)} "
          f"calls where an agent freed up chose alike, {big.mirrored} made by the engine on "
          f"arrival or step expiry were copied to the baseline")
    for s in sizes:
        ops = {name: sum(1 for d in s.engine.decisions if d[0] == name)
               for name in ("complete", "arrival", "advance")}
        gcs = s.engine.gc_ms
        rss = f", RSS +{s.rss_mib:,.0f} MiB" if s is big else ""
        print(f"  {s.backlog:>7,} waiting: setup {s.setup_s:.1f}s{rss}, "
              f"{s.idle_agents:,} agents with room nothing fits, "
              f"{s.engine.virtual:,.0f} simulated s; decisions by "
              + ", ".join(f"{k} {v:,}" for k, v in ops.items()))
        print(f"           every decision, by this thread's CPU time instead of the wall "
              f"clock: {s.engine.cpu_rate():,.0f} decisions/s "
              f"({1e6 / s.engine.cpu_rate():.1f} µs each)")
        if gcs:
            spent = sum(s.engine.decision_ns) / 1e9 - s.engine.gc_decision_ms / 1000
            print(f"           {len(gcs)} full garbage collections, {sum(gcs):,.0f} ms, "
                  f"{s.engine.gc_decision_ms:,.0f} ms of it in decisions; without: "
                  f"{s.engine.count / spent:,.0f} decisions/s")
    print(f"  memory: the engine holding {big.backlog:,} waiting contacts and "
          f"{args.agents:,} busy agents: {held_mib:,.0f} MiB (tracemalloc, requests included)")
    span = big.backlog / small.backlog

    def exponent(growth: float) -> float:
        return math.log(growth) / math.log(span) if growth > 0 and span > 1 else math.nan

    growth = _complete_rate(small.engine) / _complete_rate(big.engine)
    k = exponent(growth)
    every = small.engine.rate() / big.engine.rate()
    print(f"  {span:,.0f}x the backlog costs {growth:.2f}x the time per decision when an agent "
          f"frees up (cost ~ waiting^{k:.2f}), {every:.2f}x over every decision "
          f"(~ waiting^{exponent(every):.2f})")
    failed = []
    p99 = big.engine.ms(99)
    checks = [
        ("decisions/s", big.engine.rate() >= TARGET_RATE,
         f"{big.engine.rate():,.0f} (target >= {TARGET_RATE:,.0f})"),
        ("p99 latency", p99 <= TARGET_P99_MS,
         f"{p99:.3f} ms (target <= {TARGET_P99_MS} ms)"),
        ("sub-linear", k < 1, f"cost ~ waiting^{k:.2f} (target: exponent < 1)"),
    ]
    for name, ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {text}")
        if not ok:
            failed.append(name)
    return failed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.routing",
                                 description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--agents", type=int, default=10_000, help="agents (default 10,000)")
    ap.add_argument("--contacts", type=int, default=100_000,
                    help="waiting contacts, kept at this level (default 100,000)")
    ap.add_argument("--skills", type=int, default=50, help="distinct skills (default 50)")
    ap.add_argument("--decisions", type=int, default=100_000,
                    help="engine decisions measured per backlog size (default 100,000)")
    ap.add_argument("--baseline-decisions", type=int, default=200,
                    help="baseline decisions, also how many are compared (default 200)")
    ap.add_argument("--seed", type=int, default=1, help="scenario seed (default 1)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backlogs = [args.contacts, max(args.contacts // 10, 1), max(args.contacts // 100, 1)]
    sizes = []
    for i, backlog in enumerate(backlogs):
        print(f"engine at {backlog:,} waiting{' + baseline' if i == 0 else ''} ...",
              file=sys.stderr, flush=True)
        sizes.append(measure(args, backlog, with_baseline=i == 0))
    print("memory ...", file=sys.stderr, flush=True)
    held = memory(args)
    return 2 if report(sizes, held, args) else 0


if __name__ == "__main__":
    sys.exit(main())
