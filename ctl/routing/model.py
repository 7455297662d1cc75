"""What the routing engine knows: queues, agents, routable contacts, and what it decides.

Everything here is plain data. Times are seconds on one clock chosen by the caller (wall
time in the controller, a virtual clock in `ctl simulate`), which keeps the engine pure:
the same inputs give the same decisions, which is what the property tests rely on.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

VOICE: Final = "voice"


class Policy(StrEnum):
    """How a queue picks among the agents that qualify for a contact."""

    LONGEST_IDLE = "longest_idle"
    LEAST_OCCUPIED = "least_occupied"
    HIGHEST_PROFICIENCY = "highest_proficiency"
    ROUND_ROBIN = "round_robin"
    RING_ALL = "ring_all"


class OverflowKind(StrEnum):
    QUEUE = "queue"
    VOICEMAIL = "voicemail"
    CALLBACK = "callback"
    TICKET = "ticket"


@dataclass(frozen=True, slots=True)
class Overflow:
    kind: OverflowKind
    target: str = ""  # the queue's name for kind=queue


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    policy: Policy = Policy.LONGEST_IDLE
    sla_seconds: float = 20.0
    max_length: int | None = None
    max_wait: float | None = None
    overflow: Overflow | None = None
    wrapup_seconds: float = 0.0
    offer_timeout: float = 20.0
    ring_count: int = 3  # ring_all: how many agents one contact is offered to at once


_NONE: Final[frozenset[Any]] = frozenset()


@dataclass(frozen=True, slots=True)
class Requirement:
    """What an agent must have to take a contact under one routing step."""

    skills: tuple[tuple[str, int], ...] = ()  # (skill, minimum level), sorted by skill
    languages: frozenset[str] = _NONE
    tiers: frozenset[int] = _NONE  # empty: any tier
    agent: str | None = None  # one agent only (sticky routing, transfer to an agent)

    @staticmethod
    def of(skills: Mapping[str, int] | None = None, languages: tuple[str, ...] = (),
           tiers: tuple[int, ...] = (), agent: str | None = None) -> Requirement:
        for skill, level in (skills or {}).items():
            if not 1 <= level <= 5:
                raise ValueError(f"skill {skill!r}: level {level} is outside 1..5")
        return _requirement(tuple(sorted((skills or {}).items())), tuple(sorted(languages)),
                            tuple(sorted(tiers)), agent)

    def __hash__(self) -> int:
        # Written out, it is compiled (mypyc) where the generated one runs interpreted; a
        # requirement is hashed each time a contact joins a bucket (QueueState.bucket).
        return hash((self.skills, self.languages, self.tiers, self.agent))

    def admits(self, agent: AgentConfig) -> bool:
        if self.agent is not None and agent.id != self.agent:
            return False
        if self.tiers and agent.tier not in self.tiers:
            return False
        if self.languages and not self.languages <= agent.languages:
            return False
        skills = agent.skills
        return all(skills.get(s, 0) >= level for s, level in self.skills)


@functools.lru_cache(maxsize=4096)
def _requirement(skills: tuple[tuple[str, int], ...], languages: tuple[str, ...],
                 tiers: tuple[int, ...], agent: str | None) -> Requirement:
    """One object per distinct requirement: 100,000 waiting contacts share a few hundred,
    which the garbage collector then does not walk 100,000 times (see bench/README.md).
    Most have no languages or tiers: one shared empty set saves ~70 MB more."""
    return Requirement(skills, frozenset(languages) if languages else _NONE,
                       frozenset(tiers) if tiers else _NONE, agent)


ANY = Requirement()
# A step for this "agent" holds a contact in its place without anyone qualifying: a
# callback waiting for its retry, for instance.
HOLD = Requirement(agent="-hold-")


@dataclass(frozen=True, slots=True)
class Step:
    require: Requirement
    expires_after: float | None = None  # seconds after the contact was enqueued; None: never


def later(steps: tuple[Step, ...], by: float, first: Step | None = None) -> tuple[Step, ...]:
    """`steps` expiring `by` seconds later, after `first` if given (which lasts `by`)."""
    moved = tuple(Step(s.require, None if s.expires_after is None else s.expires_after + by)
                  for s in steps)
    return moved if first is None else (first, *moved)


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    """One queue in an agent's routing profile (Amazon Connect's meaning)."""

    queue: str
    priority: int = 1  # lower is served first
    delay: float = 0.0  # the agent sees a contact of this queue once it waited this long


@dataclass(frozen=True, slots=True)
class AgentConfig:
    id: str
    skills: Mapping[str, int] = field(default_factory=dict)
    languages: frozenset[str] = frozenset()
    tier: int = 1
    profile: tuple[ProfileEntry, ...] = ()
    capacity: Mapping[str, int] = field(default_factory=lambda: {VOICE: 1})
    voice_exclusive: bool = True  # a call takes the whole agent, and waits for a free one
    max_misses: int = 3  # consecutive offers missed before the agent is set away("missed")


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """A contact as the engine routes it; the rest of the contact lives in the database."""

    id: str
    channel: str
    queue: str
    priority: int = 0  # higher is served first
    enqueued_at: float = 0.0
    steps: tuple[Step, ...] = ()


class AgentStatus(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    AWAY = "away"
    WRAPUP = "wrapup"  # derived: available, with a contact in wrap-up


# --- decisions and happenings, returned to the caller to persist and act upon ---------
# The ones made on every routing decision (Offered, Released) or often write their
# __init__ out: compiled by mypyc, such an __init__ is native code (~30 ns), where the one
# dataclasses generates runs interpreted (~0.4 µs, each field set through
# object.__setattr__ as a frozen dataclass must). They stay frozen dataclasses: eq, hash,
# repr, asdict and immutability are the generated ones.

@dataclass(frozen=True, slots=True)
class Offered:
    offer_id: str
    contact_id: str
    agent_id: str
    expires_at: float

    def __init__(self, offer_id: str, contact_id: str, agent_id: str, expires_at: float) -> None:
        object.__setattr__(self, "offer_id", offer_id)
        object.__setattr__(self, "contact_id", contact_id)
        object.__setattr__(self, "agent_id", agent_id)
        object.__setattr__(self, "expires_at", expires_at)


@dataclass(frozen=True, slots=True)
class OfferEnded:
    """An offer that is no more: taken by another agent, declined, timed out, withdrawn."""

    offer_id: str
    contact_id: str
    agent_id: str
    reason: str  # accepted_elsewhere | declined | timeout | withdrawn

    def __init__(self, offer_id: str, contact_id: str, agent_id: str, reason: str) -> None:
        object.__setattr__(self, "offer_id", offer_id)
        object.__setattr__(self, "contact_id", contact_id)
        object.__setattr__(self, "agent_id", agent_id)
        object.__setattr__(self, "reason", reason)


@dataclass(frozen=True, slots=True)
class Requeued:
    contact_id: str
    reason: str

    def __init__(self, contact_id: str, reason: str) -> None:
        object.__setattr__(self, "contact_id", contact_id)
        object.__setattr__(self, "reason", reason)


@dataclass(frozen=True, slots=True)
class Assigned:
    contact_id: str
    agent_id: str
    offer_id: str

    def __init__(self, contact_id: str, agent_id: str, offer_id: str) -> None:
        object.__setattr__(self, "contact_id", contact_id)
        object.__setattr__(self, "agent_id", agent_id)
        object.__setattr__(self, "offer_id", offer_id)


@dataclass(frozen=True, slots=True)
class Transferred:
    """An agent passed the contact on: it waits again, in `queue`, keeping its age."""

    contact_id: str
    agent_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class Consulting:
    """The agent holding the contact talks to `to_agent` first (a warm transfer); that
    agent is reserved meanwhile."""

    contact_id: str
    agent_id: str
    to_agent: str


@dataclass(frozen=True, slots=True)
class ConsultEnded:
    contact_id: str
    agent_id: str  # who held the contact before
    to_agent: str
    handed_over: bool  # True: `to_agent` holds it now; False: it stays with `agent_id`


@dataclass(frozen=True, slots=True)
class TakenOver:
    """A supervisor took the contact from its agent (a chat taken over): `by` holds it."""

    contact_id: str
    agent_id: str  # who held it before
    by: str


@dataclass(frozen=True, slots=True)
class WrapupStarted:
    contact_id: str
    agent_id: str
    ends_at: float


@dataclass(frozen=True, slots=True)
class Released:
    """The contact no longer occupies the agent (wrap-up over, or none configured)."""

    contact_id: str
    agent_id: str

    def __init__(self, contact_id: str, agent_id: str) -> None:
        object.__setattr__(self, "contact_id", contact_id)
        object.__setattr__(self, "agent_id", agent_id)


@dataclass(frozen=True, slots=True)
class Overflowed:
    contact_id: str
    queue: str
    overflow: Overflow | None  # None: refused with nowhere to go
    reason: str  # max_wait | max_length


@dataclass(frozen=True, slots=True)
class StepExpired:
    contact_id: str
    step: int  # the index now in force; len(steps): any agent of the queue

    def __init__(self, contact_id: str, step: int) -> None:
        object.__setattr__(self, "contact_id", contact_id)
        object.__setattr__(self, "step", step)


@dataclass(frozen=True, slots=True)
class AgentChanged:
    agent_id: str
    status: AgentStatus
    reason: str = ""


Event = (Offered | OfferEnded | Requeued | Assigned | Transferred | Consulting | ConsultEnded
         | TakenOver | WrapupStarted | Released | Overflowed | StepExpired | AgentChanged)
