"""bench.routing's scenario (queues, agents, a seeded stream of contacts) and its
baseline, a router that scans every waiting contact (see routing.py and README.md)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ctl.routing.engine import Engine
from ctl.routing.model import (
    ANY,
    VOICE,
    AgentConfig,
    ContactRequest,
    Policy,
    ProfileEntry,
    QueueConfig,
    Requirement,
    Step,
)

CHAT, EMAIL = "chat", "email"
CHANNELS = (VOICE, CHAT, EMAIL)
POLICIES = (Policy.LONGEST_IDLE, Policy.LEAST_OCCUPIED, Policy.HIGHEST_PROFICIENCY,
            Policy.ROUND_ROBIN, Policy.LONGEST_IDLE)
MEAN_HANDLE = {VOICE: 300.0, CHAT: 600.0, EMAIL: 240.0}  # seconds an agent holds a contact


# --- the scenario -----------------------------------------------------------------------

class Scenario:
    """Queues, agents and a seeded stream of contacts; the same seed gives the same ones."""

    def __init__(self, agents: int, skills: int, seed: int, queues: int = 5) -> None:
        rng = random.Random(seed)
        self.queues = [QueueConfig(f"q{i}", policy=POLICIES[i % len(POLICIES)],
                                   offer_timeout=20.0) for i in range(queues)]
        self.skills = [f"s{i:02d}" for i in range(skills)]
        # A few skills are common (the main language, the main product), most are rare.
        weights = [1 / (k + 1) ** 0.8 for k in range(skills)]
        self.agents: list[AgentConfig] = []
        for n in range(agents):
            chosen: set[str] = set()
            want = rng.randint(1, min(4, skills))
            while len(chosen) < want:
                chosen.add(rng.choices(self.skills, weights)[0])
            names = rng.sample([q.name for q in self.queues], rng.randint(1, min(3, queues)))
            profile = tuple(ProfileEntry(q, priority=1 + i) for i, q in enumerate(names))
            capacity: dict[str, int] = {}
            if rng.random() < 0.7:
                capacity[VOICE] = 1
            if rng.random() < 0.5:
                capacity[CHAT] = rng.randint(2, 3)
            if rng.random() < 0.4 or not capacity:
                capacity[EMAIL] = rng.randint(1, 5)
            self.agents.append(AgentConfig(
                id=f"a{n:05d}", skills={s: rng.randint(1, 5) for s in sorted(chosen)},
                profile=profile, capacity=capacity))
        # Who could serve what: a contact's requirement is drawn from an agent who can.
        self.servers: dict[tuple[str, str], list[AgentConfig]] = {}
        for a in self.agents:
            for entry in a.profile:
                for channel in a.capacity:
                    self.servers.setdefault((entry.queue, channel), []).append(a)
        self.pairs = sorted(self.servers)
        self.pair_weights = [(3 if c == VOICE else 2 if c == CHAT else 1)
                             * (5 - int(q[1:]) % 5) for q, c in self.pairs]
        self.rng = random.Random(seed + 1)
        self.made = 0

    def contact(self, now: float) -> ContactRequest:
        rng = self.rng
        queue, channel = rng.choices(self.pairs, self.pair_weights)[0]
        model = rng.choice(self.servers[(queue, channel)])
        own = sorted(model.skills.items())
        picked = rng.sample(own, 2 if len(own) > 1 and rng.random() < 0.3 else 1)
        loose = Requirement.of({s: rng.randint(1, level) for s, level in picked})
        strict = Requirement.of(dict(picked))
        kind = rng.random()
        if kind < 0.4:  # a requirement for good
            steps: tuple[Step, ...] = (Step(loose),)
        elif kind < 0.8:  # the best agents first, then any who has the skills, then anyone
            first = rng.uniform(20, 90)
            steps = (Step(strict, first), Step(loose, first + rng.uniform(60, 600)))
        else:  # the skills for a while, then anyone in the queue
            steps = (Step(loose, rng.uniform(30, 300)),)
        priority = rng.choices((0, 1, 2, 3), (70, 20, 7, 3))[0]
        self.made += 1
        return ContactRequest(f"c{self.made:07d}", channel, queue, priority, now, steps)

    @staticmethod
    def handle_time(channel: str, rng: random.Random) -> float:
        return rng.expovariate(1 / MEAN_HANDLE[channel])


# --- the baseline -----------------------------------------------------------------------

@dataclass(slots=True)
class _Agent:
    cfg: AgentConfig
    profile: dict[str, int]  # queue -> profile priority
    used: dict[str, int] = field(default_factory=dict)
    total: int = 0


class ScanRouter:
    """The straightforward router: an agent that frees up looks at every waiting contact.

    It implements only what the measured path needs: taking over a settled state, an agent
    finishing a contact and taking the best ones it may while it has room, arrivals that
    wait, and decisions made elsewhere (`mirror`). Not modelled, as the scenario has none:
    profile delays, declined offers, contacts for one agent, wrap-up.
    """

    def __init__(self, agents: Sequence[AgentConfig]) -> None:
        self.agents = {a.id: _Agent(a, {e.queue: e.priority for e in a.profile})
                       for a in agents}
        self.waiting: dict[str, tuple[ContactRequest, int]] = {}  # id -> (request, sequence)
        self.holder: dict[str, tuple[str, str]] = {}  # contact -> (agent, channel)
        self.seq = 0

    def take_over(self, engine: Engine) -> None:
        """Start from the engine's state: who holds what, and what waits in which order."""
        for contact_id, live in engine.contacts.items():
            if live.state != "queued":
                assert live.state == "assigned" and live.agent is not None, live.state
                self._hold(self.agents[live.agent], contact_id, live.req.channel)
        for live in sorted((c for c in engine.contacts.values() if c.state == "queued"),
                           key=lambda c: c.order):
            self.enqueue(live.req, live.queued_at)

    @staticmethod
    def made(raw: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return raw

    def enqueue(self, req: ContactRequest, now: float) -> list[tuple[str, str]]:
        self.waiting[req.id] = (req, self.seq)
        self.seq += 1
        return []

    def advance(self, now: float) -> list[tuple[str, str]]:
        return []  # routing steps are read at decision time

    def accept(self, contact_id: str, agent_id: str, now: float) -> None:
        pass  # an offer holds the agent's capacity already

    def channel_of(self, contact_id: str) -> str:
        return self.holder[contact_id][1]

    def mirror(self, made: list[tuple[str, str]]) -> None:
        """Decisions the engine made on a path this router does not implement."""
        for contact_id, agent_id in made:
            req, _ = self.waiting.pop(contact_id)
            self._hold(self.agents[agent_id], contact_id, req.channel)

    def complete(self, contact_id: str, now: float) -> list[tuple[str, str]]:
        agent_id, channel = self.holder.pop(contact_id)
        agent = self.agents[agent_id]
        agent.used[channel] -= 1
        agent.total -= 1
        return self._feed(agent, now)

    def _hold(self, agent: _Agent, contact_id: str, channel: str) -> None:
        agent.used[channel] = agent.used.get(channel, 0) + 1
        agent.total += 1
        self.holder[contact_id] = (agent.cfg.id, channel)

    @staticmethod
    def _room(agent: _Agent, channel: str) -> bool:
        cfg = agent.cfg
        if agent.used.get(channel, 0) >= cfg.capacity.get(channel, 0):
            return False
        if cfg.voice_exclusive:
            return agent.total == 0 if channel == VOICE else not agent.used.get(VOICE, 0)
        return True

    def _feed(self, agent: _Agent, now: float) -> list[tuple[str, str]]:
        made = []
        cfg, profile = agent.cfg, agent.profile
        while any(self._room(agent, c) for c in cfg.capacity):
            room = {c: self._room(agent, c) for c in cfg.capacity}
            best: tuple[int, int, float, int] | None = None
            best_req: ContactRequest | None = None
            for req, seq in self.waiting.values():
                rank = profile.get(req.queue)
                if rank is None or not room.get(req.channel, False):
                    continue
                if not _requirement(req, now).admits(cfg):
                    continue
                key = (rank, -req.priority, req.enqueued_at, seq)
                if best is None or key < best:
                    best, best_req = key, req
            if best_req is None:
                break
            del self.waiting[best_req.id]
            self._hold(agent, best_req.id, best_req.channel)
            made.append((best_req.id, cfg.id))
        return made


def _requirement(req: ContactRequest, now: float) -> Requirement:
    """The step in force at `now`: each lasts until enqueued_at + expires_after."""
    for step in req.steps:
        if step.expires_after is None or req.enqueued_at + step.expires_after > now:
            return step.require
    return ANY
