"""What agents and supervisors see of routing: views of the engine, live queue figures,
and the messages pushed to their panels for each event."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ctl.errors import NotFound
from ctl.routing.engine import Engine
from ctl.routing.model import (
    AgentChanged,
    Assigned,
    ConsultEnded,
    Consulting,
    Event,
    Offered,
    OfferEnded,
    Released,
    TakenOver,
    WrapupStarted,
)

_EWMA = 0.1  # weight of the newest sample: about the last 20 contacts matter


@dataclass
class QueueStats:
    """Live figures since this controller started; reports come from the database."""

    answered: int = 0
    answered_in_sla: int = 0
    abandoned: int = 0
    handle_avg: float | None = None  # seconds, moving average
    wait_avg: float | None = None
    assigned_at: dict[str, float] = field(default_factory=dict)

    def service_level(self) -> float | None:
        done = self.answered + self.abandoned
        return self.answered_in_sla / done if done else None


class Stats:
    def __init__(self) -> None:
        self.queues: dict[str, QueueStats] = {}

    def of(self, queue: str) -> QueueStats:
        return self.queues.setdefault(queue, QueueStats())

    def saw(self, engine: Engine, events: list[Event], now: float) -> None:
        for e in events:
            live = engine.contacts.get(getattr(e, "contact_id", ""))
            if isinstance(e, Assigned) and live is not None:
                q = self.of(live.queue)
                waited = now - live.req.enqueued_at
                q.answered += 1
                q.answered_in_sla += waited <= engine.queues[live.queue].config.sla_seconds
                q.wait_avg = _mix(q.wait_avg, waited)
                q.assigned_at[e.contact_id] = now
            elif isinstance(e, WrapupStarted | Released):
                for q in self.queues.values():
                    start = q.assigned_at.pop(e.contact_id, None)
                    if start is not None:
                        q.handle_avg = _mix(q.handle_avg, now - start)

    def abandoned(self, queue: str) -> None:
        self.of(queue).abandoned += 1


def _mix(avg: float | None, sample: float) -> float:
    return sample if avg is None else avg + _EWMA * (sample - avg)


def position(engine: Engine, contact_id: str) -> int:
    """1 for the next contact to be served in its queue (a walk: asked for now and then)."""
    live = engine.contacts.get(contact_id)
    if live is None or live.state != "queued":
        raise NotFound(f"contact {contact_id} is not waiting")
    ahead = 0
    for bucket in engine.queues[live.queue].buckets.values():
        ahead += sum(1 for c in bucket.contacts() if c.order < live.order)
    return ahead + 1


def expected_wait(engine: Engine, stats: Stats, contact_id: str) -> float | None:
    """Seconds until an agent is likely free for this contact: its position times the
    average handle time, shared by the agents staffing the queue. None: no basis yet."""
    live = engine.contacts.get(contact_id)
    if live is None:
        return None
    handle = stats.of(live.queue).handle_avg
    staffed = sum(1 for a in engine.agents.values() if a.state.value != "offline"
                  and any(p.queue == live.queue for p in a.config.profile))
    if handle is None or not staffed:
        return None
    return position(engine, contact_id) * handle / staffed


def queue_view(engine: Engine, stats: Stats, name: str, now: float) -> dict[str, Any]:
    queue = engine.queues[name]
    waiting = [c for c in engine.contacts.values() if c.queue == name
               and c.state in ("queued", "offered")]
    agents = [a for a in engine.agents.values() if any(p.queue == name for p in a.config.profile)]
    s = stats.of(name)
    return {
        "name": name,
        "policy": queue.config.policy.value,
        "waiting": queue.waiting,
        "offered": sum(1 for c in waiting if c.state == "offered"),
        "oldest_wait": max((now - c.queued_at for c in waiting), default=0.0),
        "agents": {
            "staffed": sum(1 for a in agents if a.state.value != "offline"),
            "available": sum(1 for a in agents if a.state.value == "available"
                             and any(a.routable(ch) for ch in a.config.capacity)),
            "busy": sum(1 for a in agents if a.total),
        },
        "answered": s.answered, "abandoned": s.abandoned, "service_level": s.service_level(),
        "average_wait": s.wait_avg, "average_handle": s.handle_avg,
    }


def agent_view(engine: Engine, agent_id: str) -> dict[str, Any]:
    agent = engine.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"no agent {agent_id} in routing")
    contacts = [engine.contacts[c] for c in sorted(agent.contacts) if c in engine.contacts]
    return {
        "id": agent_id,
        "status": engine.status(agent_id).value,
        "reason": agent.reason,
        "offers": [_offer(engine, o.id) for o in engine.offers.values()
                   if o.agent_id == agent_id],
        "contacts": [{"id": c.req.id, "channel": c.req.channel, "queue": c.queue,
                      "state": c.state} for c in contacts if c.agent == agent_id],
        "load": dict(agent.used),
        "capacity": dict(agent.config.capacity),
    }


def _offer(engine: Engine, offer_id: str) -> dict[str, Any]:
    offer = engine.offers[offer_id]
    live = engine.contacts[offer.contact_id]
    return {"id": offer.id, "contact_id": offer.contact_id, "channel": live.req.channel,
            "queue": live.queue, "expires_at": offer.expires_at}


def messages(engine: Engine, events: list[Event]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(topic, message) for each event: the agent concerned, and supervisors."""
    for e in events:
        kind = type(e).__name__
        body = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(e).items()
                if k != "overflow"}
        yield "supervisor", {"type": kind, **body}
        if isinstance(e, Offered) and e.offer_id in engine.offers:
            offer = _offer(engine, e.offer_id)
            # Seconds to answer, for a countdown that needs no clock shared with ours.
            offer["timeout"] = engine.queues[offer["queue"]].config.offer_timeout
            yield f"agent:{e.agent_id}", {"type": "offer", "offer": offer}
        elif isinstance(e, OfferEnded | Assigned | WrapupStarted | Released | AgentChanged):
            yield f"agent:{e.agent_id}", {"type": kind, **body}
        elif isinstance(e, Consulting | ConsultEnded):  # both agents see it
            yield f"agent:{e.agent_id}", {"type": kind, **body}
            yield f"agent:{e.to_agent}", {"type": kind, **body}
        elif isinstance(e, TakenOver):  # the agent's panel lets the conversation go
            yield f"agent:{e.agent_id}", {"type": kind, **body}
            yield f"agent:{e.by}", {"type": kind, **body}
