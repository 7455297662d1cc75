"""A `ctl simulate` scenario file: queues, agent groups, arrival streams, and how long.

Times are seconds on the virtual clock that starts at 0; anywhere a time is expected a
number of seconds or a string such as "90s", "30m", "8h" or "1h30m" will do. Errors name
the file, line and column of the value at fault, like the settings file's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ctl import yamlloc
from ctl.durations import Seconds
from ctl.errors import ConfigError
from ctl.routing import store
from ctl.routing.model import VOICE, AgentConfig, ProfileEntry, QueueConfig, Step
from ctl.settings import QueueSettings, StepSettings

_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"

TICKS = 1024  # per second


def tick(seconds: float) -> float:
    """`seconds` on the virtual clock, which counts in 1/1024 s. Sums and differences of
    such times are exact in floating point, so `a + d - a == d` holds whichever way the
    engine compares a wait with a delay (with arbitrary floats it can miss by one ulp)."""
    return round(seconds * TICKS) / TICKS


def _tick_opt(seconds: float | None) -> float | None:
    return None if seconds is None else tick(seconds)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Distribution(_Spec):
    """A random duration: handle time or patience."""

    dist: Literal["exponential", "fixed", "lognormal"] = "exponential"
    mean: Seconds = Field(gt=0)
    sd: Seconds | None = Field(None, gt=0)  # lognormal only

    @model_validator(mode="after")
    def _sd(self) -> Distribution:
        if self.dist == "lognormal" and self.sd is None:
            raise ValueError("a lognormal distribution needs sd (its standard deviation)")
        if self.dist != "lognormal" and self.sd is not None:
            raise ValueError(f"sd applies to lognormal only, not {self.dist}")
        return self

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        mean = self.mean
        if self.dist == "fixed":
            fixed = tick(mean)
            return lambda: fixed
        if self.dist == "exponential":
            rate = 1.0 / mean
            return lambda: tick(rng.expovariate(rate))
        assert self.sd is not None
        sigma = math.sqrt(math.log1p((self.sd / mean) ** 2))
        mu = math.log(mean) - sigma * sigma / 2
        return lambda: tick(rng.lognormvariate(mu, sigma))


def queue_config(q: QueueSettings) -> QueueConfig:
    """A queue of the scenario (the settings file's schema) on the virtual clock's ticks."""
    config = store.queue_config(q)
    return replace(config, max_wait=_tick_opt(config.max_wait),
                   wrapup_seconds=tick(config.wrapup_seconds),
                   offer_timeout=tick(config.offer_timeout))


def steps(raw: list[StepSettings]) -> tuple[Step, ...]:
    """Routing steps (the settings file's schema) on the virtual clock's ticks."""
    return tuple(Step(s.require, _tick_opt(s.expires_after))
                 for s in store.steps_from_settings(raw))


def _entry(v: Any) -> Any:
    return {"queue": v} if isinstance(v, str) else v


class ProfileSpec(_Spec):
    queue: str
    priority: int = Field(1, ge=1)  # lower is served first
    delay: Seconds = Field(0.0, ge=0)


class ShiftSpec(_Spec):
    start: Seconds = Field(0.0, ge=0)
    end: Seconds | None = Field(None, gt=0)  # None: until the run is over

    @model_validator(mode="after")
    def _order(self) -> ShiftSpec:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"a shift must end after it starts ({self.start:g} s)")
        return self


class AgentGroupSpec(_Spec):
    name: str = Field(pattern=_NAME)
    count: int = Field(ge=0)
    skills: dict[str, int] = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=list)
    tier: int = Field(1, ge=1)
    # Each entry a queue name or {queue, priority, delay}; none given: every queue.
    profile: list[Annotated[ProfileSpec, BeforeValidator(_entry)]] | None = None
    capacity: dict[str, int] = Field(default_factory=lambda: {VOICE: 1})
    voice_exclusive: bool = True
    shift: ShiftSpec = Field(default_factory=ShiftSpec)  # type: ignore[arg-type]
    ring_delay: Seconds = Field(0.0, ge=0)  # the agent accepts an offer this long after it
    max_misses: int = Field(3, ge=1)

    @field_validator("skills")
    @classmethod
    def _levels(cls, v: dict[str, int]) -> dict[str, int]:
        for skill, level in v.items():
            if not 1 <= level <= 5:
                raise ValueError(f"skill {skill!r}: level {level} is outside 1..5")
        return v

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, v: dict[str, int]) -> dict[str, int]:
        for channel, n in v.items():
            if n < 0:
                raise ValueError(f"capacity for {channel!r} must be >= 0 (got {n})")
        return v

    def profile_entries(self, queues: list[str]) -> tuple[ProfileEntry, ...]:
        if self.profile is None:
            return tuple(ProfileEntry(q) for q in queues)
        return tuple(ProfileEntry(p.queue, p.priority, tick(p.delay)) for p in self.profile)

    def agent(self, agent_id: str, queues: list[str]) -> AgentConfig:
        return AgentConfig(agent_id, dict(self.skills), frozenset(self.languages), self.tier,
                           self.profile_entries(queues), dict(self.capacity),
                           self.voice_exclusive, self.max_misses)


class ArrivalSpec(_Spec):
    queue: str
    channel: str = VOICE
    process: Literal["poisson", "regular"] = "poisson"
    rate_per_hour: float | None = Field(None, ge=0)
    rates: list[Annotated[float, Field(ge=0)]] | None = None  # per hour, one per interval
    interval: Seconds = Field(1800.0, gt=0)  # the length of each `rates` interval
    handle: Distribution
    patience: Distribution | None = None  # None: callers never give up
    priority: int = 0
    steps: list[StepSettings] = Field(default_factory=list)  # none: the queue's

    @model_validator(mode="after")
    def _one_rate(self) -> ArrivalSpec:
        if (self.rate_per_hour is None) == (self.rates is None):
            raise ValueError("give exactly one of rate_per_hour or rates (per-interval rates "
                             "per hour)")
        if self.rates is not None and not self.rates:
            raise ValueError("rates needs at least one interval's rate")
        return self

    def rate_at(self, interval: int) -> float:
        """Contacts per hour in the `interval`-th interval (the rates repeat)."""
        if self.rates is None:
            return self.rate_per_hour or 0.0
        return self.rates[interval % len(self.rates)]


class Scenario(_Spec):
    duration: Seconds = Field(gt=0)  # arrivals stop then; contacts in the system finish
    warmup: Seconds = Field(0.0, ge=0)  # statistics cover contacts arriving after it
    # After the last arrival, contacts still in the system are followed this long at most
    # (one that nobody serves and nothing removes would be followed for ever).
    drain: Seconds = Field(24 * 3600.0, ge=0)
    seed: int = 1
    queues: list[QueueSettings] = Field(min_length=1)  # as in the settings file
    agents: list[AgentGroupSpec] = Field(default_factory=list)
    arrivals: list[ArrivalSpec] = Field(min_length=1)

    def queue_names(self) -> list[str]:
        return [q.name for q in self.queues]


def load_scenario(path: Path) -> Scenario:
    doc = yamlloc.load(path)
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1:1: a scenario must be a mapping (duration, queues, "
                          "agents, arrivals)")
    try:
        scenario = Scenario(**data)
    except ValidationError as e:
        raise ConfigError(_explain(e, doc), hint=_HINT) from None
    problems = [f"{doc.where(loc)}: {_dotted(loc)}: {msg}" for loc, msg in _check(scenario)]
    if problems:
        raise ConfigError("invalid scenario:\n  " + "\n  ".join(problems), hint=_HINT)
    return scenario


_HINT = "see examples/simulate/ for complete scenarios"
Loc = tuple[str | int, ...]


def _check(s: Scenario) -> list[tuple[Loc, str]]:
    """What a schema cannot say: names that must exist, orders that must hold."""
    out: list[tuple[Loc, str]] = []
    names = s.queue_names()
    if s.warmup >= s.duration:
        out.append((("warmup",), f"the warm-up ({s.warmup:g} s) must end before the run does "
                                 f"({s.duration:g} s)"))
    for i, q in enumerate(s.queues):
        if names.index(q.name) != i:
            out.append((("queues", i, "name"), f"queue {q.name!r} is defined twice"))
        if q.overflow is not None and q.overflow.kind == "queue":
            if q.overflow.target not in names:
                out.append((("queues", i, "overflow", "target"),
                            f"no queue named {q.overflow.target!r} (queues: {names})"))
            elif q.overflow.target == q.name:
                out.append((("queues", i, "overflow", "target"),
                            "a queue cannot overflow to itself"))
    timeouts = {q.name: q.offer_timeout for q in s.queues}
    groups = [g.name for g in s.agents]
    for i, g in enumerate(s.agents):
        if groups.index(g.name) != i:
            out.append((("agents", i, "name"), f"agent group {g.name!r} is defined twice"))
        for j, p in enumerate(g.profile or ()):
            if p.queue not in names:
                out.append((("agents", i, "profile", j),
                            f"no queue named {p.queue!r} (queues: {names})"))
        if g.ring_delay:
            served = [p.queue for p in g.profile] if g.profile is not None else names
            for name in served:
                if name in timeouts and g.ring_delay >= timeouts[name]:
                    out.append((("agents", i, "ring_delay"),
                                f"a ring delay of {g.ring_delay:g} s misses every offer of "
                                f"queue {name!r} (offer_timeout {timeouts[name]:g} s)"))
        if g.shift.start >= s.duration:
            out.append((("agents", i, "shift", "start"),
                        f"the shift starts after the run ends ({s.duration:g} s)"))
    for i, a in enumerate(s.arrivals):
        if a.queue not in names:
            out.append((("arrivals", i, "queue"), f"no queue named {a.queue!r} "
                                                  f"(queues: {names})"))
        ends = [st.expires_after for st in a.steps]
        bounded = [e for e in ends if e is not None]
        if None in ends[:-1] or bounded != sorted(bounded):
            out.append((("arrivals", i, "steps"), "routing steps must expire in order, and "
                                                  "only the last may never expire"))
    return out


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


def _explain(error: ValidationError, doc: yamlloc.YamlDoc) -> str:
    lines = []
    for err in error.errors():
        # Pydantic adds the names of function validators to the location: drop them.
        loc = tuple(p for p in err["loc"] if isinstance(p, int)
                    or not p.startswith(("function-", "function_")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {_dotted(loc)!r}"
        elif err["type"] == "missing":
            msg = f"{loc[-1]} is required"
        lines.append(f"{doc.where(loc)}: {_dotted(loc)}: {msg}")
    return "invalid scenario:\n  " + "\n  ".join(lines)
