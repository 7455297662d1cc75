"""What `ctl simulate` reports (simulate.py runs the simulation): each queue's and agent
group's figures, the Erlang C check of a scenario it describes exactly, with confidence
margins from batch means, and the report as text or JSON."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ctl.routing import erlang
from ctl.routing.scenario import Scenario


@dataclass(slots=True)
class Tally:
    """One queue's figures (or, for "all", the contact's whole journey)."""

    offered: int = 0
    handled: int = 0
    in_sla: int = 0
    abandoned: int = 0
    overflowed: Counter[str] = field(default_factory=Counter)
    answer_waits: list[float] = field(default_factory=list)
    answer_arrivals: list[float] = field(default_factory=list)  # of the same contacts
    waits: list[float] = field(default_factory=list)  # every contact that left, any way



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


def queue_report(name: str, sla: float | None, t: Tally, waiting: int) -> QueueReport:
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


def margins(t: Tally, lo: float, hi: float, sla: float) -> dict[str, float | None]:
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
