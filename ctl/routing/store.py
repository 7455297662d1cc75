"""Routing's half of the database: what the engine decided, written before anyone hears it,
and what the engine is rebuilt from after a restart.

Engine times are epoch seconds; the database holds aware UTC datetimes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctl.contacts.service import event_row, move_in
from ctl.contacts.states import FINAL, ContactState
from ctl.routing.model import (
    AgentChanged,
    AgentConfig,
    AgentStatus,
    Assigned,
    ConsultEnded,
    Consulting,
    ContactRequest,
    Event,
    Offered,
    OfferEnded,
    Overflow,
    Overflowed,
    OverflowKind,
    Policy,
    ProfileEntry,
    QueueConfig,
    Released,
    Requeued,
    Requirement,
    Step,
    StepExpired,
    TakenOver,
    Transferred,
    WrapupStarted,
)
from ctl.settings import QueueSettings, StepSettings
from ctl.store.db import Database
from ctl.store.models import Agent, Contact, ContactEvent, Queue, new_id

log = logging.getLogger(__name__)
_FINAL = [s.value for s in FINAL]


def epoch(at: datetime) -> float:
    return at.timestamp()


def aware(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# --- conversions ---------------------------------------------------------------------

def queue_config(q: QueueSettings) -> QueueConfig:
    overflow = (Overflow(OverflowKind(q.overflow.kind), q.overflow.target)
                if q.overflow else None)
    return QueueConfig(q.name, Policy(q.policy), q.sla_seconds, q.max_length, q.max_wait,
                       overflow, q.wrapup_seconds, q.offer_timeout, q.ring_count)


def steps_to_json(steps: tuple[Step, ...]) -> list[dict[str, Any]]:
    return [{"skills": dict(s.require.skills), "languages": sorted(s.require.languages),
             "tiers": sorted(s.require.tiers), "agent": s.require.agent,
             "expires_after": s.expires_after} for s in steps]


def steps_from_json(raw: list[Any]) -> tuple[Step, ...]:
    return tuple(Step(Requirement.of(r.get("skills") or {}, tuple(r.get("languages") or ()),
                                     tuple(r.get("tiers") or ()), r.get("agent")),
                      r.get("expires_after")) for r in raw)


def steps_from_settings(raw: list[StepSettings]) -> tuple[Step, ...]:
    return tuple(Step(Requirement.of(s.skills, tuple(s.languages), tuple(s.tiers)),
                      s.expires_after) for s in raw)


def agent_config(row: Agent, known_queues: set[str], max_misses: int = 3) -> AgentConfig:
    profile = []
    for entry in row.profile or []:
        if entry.get("queue") not in known_queues:
            log.warning("agent %s: queue %r in its profile is not configured; ignored",
                        row.username, entry.get("queue"))
            continue
        profile.append(ProfileEntry(entry["queue"], int(entry.get("priority", 1)),
                                    float(entry.get("delay", 0.0))))
    capacity = {str(k): int(v) for k, v in (row.capacity or {}).items()} or {"voice": 1}
    return AgentConfig(row.id, {str(k): int(v) for k, v in (row.skills or {}).items()},
                       frozenset(row.languages or ()), row.tier, tuple(profile), capacity,
                       row.voice_exclusive, max_misses)


# --- restoring -------------------------------------------------------------------------

@dataclass
class Snapshot:
    """Everything the engine needs after a restart, in the order to give it."""

    queue_ids: dict[str, str] = field(default_factory=dict)  # name -> row id
    agents: list[tuple[AgentConfig, AgentStatus, str]] = field(default_factory=list)
    waiting: list[ContactRequest] = field(default_factory=list)
    held: list[tuple[ContactRequest, str, str]] = field(default_factory=list)  # agent, state


async def sync_queues(db: Database, queues: list[QueueSettings]) -> dict[str, str]:
    """Queue rows for the configured queues (created or updated); name -> id."""
    ids = {}
    async with db.session() as s, s.begin():
        rows = {q.name: q for q in await s.scalars(select(Queue))}
        for q in queues:
            row = rows.get(q.name)
            if row is None:
                row = Queue(id=new_id(), name=q.name)
                s.add(row)
            row.config = q.model_dump(mode="json")
            ids[q.name] = row.id
    return ids


async def load(db: Database, queues: list[QueueSettings], max_misses: int = 3) -> Snapshot:
    snap = Snapshot(queue_ids=await sync_queues(db, queues))
    names = {v: k for k, v in snap.queue_ids.items()}
    async with db.session() as s, s.begin():
        for row in await s.scalars(select(Agent).order_by(Agent.username)):
            state = AgentStatus(row.state) if row.state in ("available", "away") else \
                AgentStatus.OFFLINE
            snap.agents.append((agent_config(row, set(names.values()), max_misses), state,
                                row.state_reason or ""))
        stmt = (select(Contact).where(Contact.state.in_(
            ["queued", "offered", "assigned", "wrapup"]))
            .order_by(Contact.enqueued_at, Contact.id))
        for c in await s.scalars(stmt):
            queue = names.get(c.queue_id or "")
            if queue is None:
                move_in(s, c, ContactState.CLOSED, "queue_removed", None)
                continue
            req = _request(c, queue)
            if c.state in ("assigned", "wrapup") and c.agent_id:
                snap.held.append((req, c.agent_id, c.state))
            elif c.state in ("assigned", "wrapup"):
                move_in(s, c, ContactState.CLOSED, "agent_removed", None)
            else:
                if c.state == "offered":  # the offer died with the process that made it
                    move_in(s, c, ContactState.QUEUED, "offer_lost_in_restart", None)
                snap.waiting.append(req)
    return snap


def _request(c: Contact, queue: str) -> ContactRequest:
    at = epoch(c.enqueued_at or c.created_at)
    return ContactRequest(c.id, c.channel, queue, c.priority, at, steps_from_json(c.criteria))


# --- persisting decisions ------------------------------------------------------------

def persist(s: Session, events: list[Event], queue_ids: dict[str, str]) -> None:
    """Write what the engine decided, in the caller's transaction, in order (a
    `Database.write` work)."""
    for e in events:
        if isinstance(e, AgentChanged):
            agent = s.get(Agent, e.agent_id)
            if agent is not None:
                agent.state = e.status.value if e.status is not AgentStatus.WRAPUP else \
                    "available"
                agent.state_reason = e.reason or None
            continue
        contact = s.get(Contact, e.contact_id)
        if contact is None or contact.state in _FINAL:
            continue  # already ended elsewhere (the caller hung up): nothing to record
        if isinstance(e, Offered):
            move_in(s, contact, ContactState.OFFERED, "offered",
                    {"offer": e.offer_id, "agent": e.agent_id, "expires_at": e.expires_at})
        elif isinstance(e, OfferEnded):
            s.add(_log(contact.id, "offer_ended", {"offer": e.offer_id, "agent": e.agent_id,
                                                   "reason": e.reason}))
        elif isinstance(e, Requeued):
            move_in(s, contact, ContactState.QUEUED, e.reason, None)
        elif isinstance(e, Assigned):
            move_in(s, contact, ContactState.ASSIGNED, "accepted",
                    {"offer": e.offer_id, "agent": e.agent_id})
            contact.agent_id = e.agent_id
        elif isinstance(e, Transferred):
            move_in(s, contact, ContactState.QUEUED, "transferred",
                    {"from_agent": e.agent_id, "queue": e.queue})
            contact.queue_id, contact.agent_id = queue_ids[e.queue], None
        elif isinstance(e, Consulting):
            s.add(_log(contact.id, "consult", {"action": "started", "agent": e.agent_id,
                                               "to": e.to_agent}))
        elif isinstance(e, ConsultEnded):
            s.add(_log(contact.id, "consult", {
                "action": "handed_over" if e.handed_over else "cancelled",
                "agent": e.agent_id, "to": e.to_agent}))
            if e.handed_over:
                contact.agent_id = e.to_agent
        elif isinstance(e, TakenOver):
            s.add(_log(contact.id, "takeover", {"agent": e.agent_id, "by": e.by}))
            contact.agent_id = e.by
        elif isinstance(e, WrapupStarted):
            move_in(s, contact, ContactState.WRAPUP, "wrapup", {"ends_at": e.ends_at})
        elif isinstance(e, Released):
            move_in(s, contact, ContactState.CLOSED, "completed", None)
        elif isinstance(e, StepExpired):
            s.add(_log(contact.id, "routing_step", {"step": e.step}))
        elif isinstance(e, Overflowed):
            _overflowed(s, contact, e, queue_ids)


def _overflowed(s: Session, contact: Contact, e: Overflowed,
                queue_ids: dict[str, str]) -> None:
    data = {"queue": e.queue, "reason": e.reason,
            "to": None if e.overflow is None else {"kind": e.overflow.kind.value,
                                                   "target": e.overflow.target}}
    if e.overflow is not None and e.overflow.kind is OverflowKind.CALLBACK:
        s.add(_log(contact.id, "overflow", data))  # it waits on (Requeued follows an offer)
        return
    if contact.state == ContactState.OFFERED:  # its last offer ended as its wait ran out
        move_in(s, contact, ContactState.QUEUED, "offer_ended", None)
    if e.overflow is not None and e.overflow.kind is OverflowKind.QUEUE:
        contact.queue_id = queue_ids[e.overflow.target]
        s.add(_log(contact.id, "overflow", data))
        return
    # voicemail and ticket are taken over by their services from this state.
    move_in(s, contact, ContactState.OVERFLOWED, e.reason, data)


def _log(contact_id: str, kind: str, data: dict[str, Any]) -> ContactEvent:
    return event_row(contact_id, kind, data)
