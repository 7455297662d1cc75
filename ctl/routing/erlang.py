"""Erlang C: how a queue served by N identical agents behaves under Poisson arrivals and
exponential handle times, and how many agents a service level target needs.

Traffic is `A = rate * AHT` erlangs. Erlang B comes from its recurrence
`B(0) = 1, B(n) = A B(n-1) / (n + A B(n-1))`, which never forms a factorial or a power
and so stays exact for thousands of agents; Erlang C follows from it:
`C = N B / (N - A (1 - B))`, the probability that a contact waits at all. Then
`P(wait > t) = C exp(-(N - A) t / AHT)` and `ASA = C AHT / (N - A)`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

_MAX_AGENTS = 1_000_000


def traffic(rate_per_hour: float, aht: float) -> float:
    """Offered load in erlangs: contacts per hour times handle time in seconds."""
    if rate_per_hour < 0 or aht <= 0:
        raise ValueError(f"rate must be >= 0 and AHT > 0 (got {rate_per_hour}, {aht})")
    return rate_per_hour * aht / 3600.0


def erlang_b(agents: int, erlangs: float) -> float:
    """Blocking probability of `agents` servers with no queue (the recurrence)."""
    if agents < 0 or erlangs < 0:
        raise ValueError(f"agents and traffic must be >= 0 (got {agents}, {erlangs})")
    b = 1.0
    for n in range(1, agents + 1):
        b = erlangs * b / (n + erlangs * b)
    return b


def _c_from_b(agents: int, erlangs: float, b: float) -> float:
    if agents <= erlangs:
        return 1.0  # the queue grows without bound: everyone waits
    return agents * b / (agents - erlangs * (1.0 - b))


def erlang_c(agents: int, erlangs: float) -> float:
    """Probability that a contact waits (1.0 when traffic reaches the agents)."""
    return _c_from_b(agents, erlangs, erlang_b(agents, erlangs))


def _sl(agents: int, erlangs: float, aht: float, sla_seconds: float, c: float) -> float:
    if agents <= erlangs:
        return 0.0
    return max(0.0, 1.0 - c * math.exp(-(agents - erlangs) * sla_seconds / aht))


def _asa(agents: int, erlangs: float, aht: float, c: float) -> float:
    return math.inf if agents <= erlangs else c * aht / (agents - erlangs)


def _wait_quantile(agents: int, erlangs: float, aht: float, c: float, q: float) -> float:
    """The wait that a fraction `q` of contacts do not exceed."""
    if agents <= erlangs:
        return math.inf
    if c <= 1.0 - q:
        return 0.0
    return aht / (agents - erlangs) * math.log(c / (1.0 - q))


@dataclass(frozen=True, slots=True)
class Figures:
    """What Erlang C predicts for one staffing level."""

    agents: int
    erlangs: float
    p_wait: float  # probability of waiting at all
    service_level: float  # fraction answered within sla_seconds
    asa: float  # average speed of answer, seconds, over every contact
    p90_wait: float  # seconds
    occupancy: float

    def as_dict(self) -> dict[str, Any]:
        return {k: _finite(v) for k, v in asdict(self).items()}


def figures(agents: int, rate_per_hour: float, aht: float, sla_seconds: float) -> Figures:
    a = traffic(rate_per_hour, aht)
    c = erlang_c(agents, a)
    return _figures(agents, a, aht, sla_seconds, c)


def _figures(agents: int, a: float, aht: float, sla_seconds: float, c: float) -> Figures:
    return Figures(agents, a, c, _sl(agents, a, aht, sla_seconds, c), _asa(agents, a, aht, c),
                   _wait_quantile(agents, a, aht, c, 0.9),
                   min(1.0, a / agents) if agents else 1.0)


def service_level(agents: int, rate_per_hour: float, aht: float, sla_seconds: float) -> float:
    return figures(agents, rate_per_hour, aht, sla_seconds).service_level


def asa(agents: int, rate_per_hour: float, aht: float) -> float:
    return figures(agents, rate_per_hour, aht, 0.0).asa


def agents_for(rate_per_hour: float, aht: float, sla_seconds: float, target: float,
               max_occupancy: float = 1.0) -> int:
    """The fewest agents whose service level reaches `target` (and whose occupancy stays
    at or under `max_occupancy`)."""
    return _search(rate_per_hour, aht, sla_seconds, target, max_occupancy)[-1].agents


def _search(rate_per_hour: float, aht: float, sla_seconds: float, target: float,
            max_occupancy: float) -> list[Figures]:
    """Figures for 1, 2, ... agents up to the first that meets both targets."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target service level must be between 0 and 1 (got {target})")
    if not 0.0 < max_occupancy <= 1.0:
        raise ValueError(f"max occupancy must be in (0, 1] (got {max_occupancy})")
    if sla_seconds < 0:
        raise ValueError(f"SLA threshold must be >= 0 seconds (got {sla_seconds})")
    a = traffic(rate_per_hour, aht)
    out: list[Figures] = []
    b = 1.0
    for n in range(1, _MAX_AGENTS + 1):
        b = a * b / (n + a * b)  # Erlang B for n agents, carried along: O(N) in all
        f = _figures(n, a, aht, sla_seconds, _c_from_b(n, a, b))
        out.append(f)
        if f.service_level >= target and f.occupancy <= max_occupancy:
            return out
    raise ValueError(f"no staffing up to {_MAX_AGENTS} agents meets the target")


@dataclass(frozen=True, slots=True)
class Plan:
    """`ctl plan`: the agents needed, why, and the figures around that answer."""

    rate_per_hour: float
    aht: float
    sla_seconds: float
    target: float
    max_occupancy: float
    shrinkage: float
    needed: Figures
    by_service_level: int  # agents the service level target alone needs
    scheduled: int  # agents to schedule so that `needed` are on the phones
    around: tuple[Figures, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate_per_hour": self.rate_per_hour, "aht": self.aht,
            "sla_seconds": self.sla_seconds, "target": self.target,
            "max_occupancy": self.max_occupancy, "shrinkage": self.shrinkage,
            "erlangs": self.needed.erlangs, "agents": self.needed.agents,
            "agents_for_service_level": self.by_service_level, "scheduled": self.scheduled,
            "figures": self.needed.as_dict(), "around": [f.as_dict() for f in self.around],
        }

    def render(self) -> str:
        n = self.needed
        lines = [
            f"{self.rate_per_hour:g} contacts/h x {self.aht:g} s AHT = {n.erlangs:.2f} erlangs; "
            f"target {self.target:.0%} answered within {self.sla_seconds:g} s"
            + (f", occupancy <= {self.max_occupancy:.0%}" if self.max_occupancy < 1 else ""),
            "",
            "  agents  service level      ASA  p90 wait  P(wait)  occupancy",
        ]
        for f in self.around:
            mark = ">" if f.agents == n.agents else " "
            lines.append(f"{mark} {f.agents:6d}  {_pct(f.service_level):>13}  "
                         f"{_secs(f.asa):>7}  {_secs(f.p90_wait):>8}  {_pct(f.p_wait):>7}  "
                         f"{_pct(f.occupancy):>9}")
        why = ""
        if n.agents > self.by_service_level:
            why = (f" (the service level alone needs {self.by_service_level}; "
                   f"the occupancy cap needs {n.agents})")
        lines += ["", f"agents needed on the phones: {n.agents}{why}"]
        if self.shrinkage:
            lines.append(f"agents to schedule with {self.shrinkage:.0%} shrinkage: "
                         f"{self.scheduled}")
        return "\n".join(lines)


def plan(rate_per_hour: float, aht: float, sla_seconds: float, target: float,
         max_occupancy: float = 1.0, shrinkage: float = 0.0) -> Plan:
    if not 0.0 <= shrinkage < 1.0:
        raise ValueError(f"shrinkage must be in [0, 1) (got {shrinkage})")
    if rate_per_hour <= 0:
        raise ValueError(f"rate must be > 0 contacts per hour (got {rate_per_hour})")
    rows = _search(rate_per_hour, aht, sla_seconds, target, max_occupancy)
    needed = rows[-1]
    by_sl = next(f.agents for f in rows if f.service_level >= target)
    a = needed.erlangs
    extra = [_figures(k, a, aht, sla_seconds, erlang_c(k, a))
             for k in range(needed.agents + 1, needed.agents + 3)]
    around = tuple(f for f in rows if f.agents >= max(needed.agents - 3, math.floor(a) + 1)
                   ) + tuple(extra)
    # 1e-9: 21 / (1 - 0.3) is 30.000000000000004 in floating point, and needs 30, not 31.
    scheduled = math.ceil(needed.agents / (1.0 - shrinkage) - 1e-9)
    return Plan(rate_per_hour, aht, sla_seconds, target, max_occupancy, shrinkage, needed,
                by_sl, scheduled, around)


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and math.isinf(v) else v


def _pct(v: float) -> str:
    return f"{v:.1%}"


def _secs(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.1f} s"
