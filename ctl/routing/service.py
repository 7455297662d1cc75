"""The routing service: the engine behind a lock, its decisions persisted before they are
told to anyone, its clock driven by the loop.

Every operation runs under one lock: the engine changes, the events it returned are
written in one transaction, then agents and listeners hear of them. If the write fails
the engine is rebuilt from the database, so memory never runs ahead of what was stored
and the caller's operation is refused, not half-done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctl import runtime
from ctl.contacts.service import move_in
from ctl.contacts.states import FINAL, ContactState
from ctl.errors import Forbidden, InvalidTransition, NotFound
from ctl.routing import store
from ctl.routing.engine import Engine
from ctl.routing.model import (
    HOLD,
    AgentStatus,
    ContactRequest,
    Event,
    Requirement,
    Step,
    later,
)
from ctl.routing.notifier import Message, Notifier
from ctl.routing.views import Stats, agent_view, expected_wait, messages, position, queue_view
from ctl.settings import QueueSettings, RoutingSettings
from ctl.store.db import Database
from ctl.store.models import Agent, Contact, Customer, utcnow

log = logging.getLogger(__name__)

Listener = Callable[[list[Event]], Coroutine[Any, Any, None]]
# Contacts held after a rebuild from which the heap is frozen: below, a full collection is
# short, and anything frozen that later becomes cyclic garbage would never be freed.
_FREEZE_FROM = 10_000
Before = Callable[[Session, float], None]


class RoutingService:
    def __init__(self, db: Database, settings: RoutingSettings, notifier: Notifier,
                 clock: Callable[[], float] = time.time,
                 publish: Callable[[str, Message], None] | None = None) -> None:
        self._db = db
        self.settings = settings
        self.publish = publish or notifier.publish
        self.now = clock
        self.engine = Engine()
        self.stats = Stats()
        self.queue_ids: dict[str, str] = {}
        self.listeners: list[Listener] = []  # e.g. telephony, which rings agents' phones
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self._lock:
            await self._rebuild()
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self.engine = Engine()  # a node that stops leading must not answer from memory

    # --- contacts ---------------------------------------------------------------------

    async def enqueue(self, contact_id: str, queue: str, *, priority: int = 0,
                      steps: tuple[Step, ...] | None = None) -> None:
        """Put a contact (new, or out of its IVR) in `queue`. Raises before anything is
        stored if the queue or the contact is wrong."""
        qs = self.queue_settings(queue)
        contact, tier, sticky = await self._routing_facts(contact_id)
        priority += self.settings.tier_priority.get(tier or "", 0)
        steps = store.steps_from_settings(qs.steps) if steps is None else steps
        if sticky and self.settings.sticky_wait > 0:
            wait = self.settings.sticky_wait
            steps = later(steps, wait, Step(Requirement(agent=sticky), wait))

        def before(s: Session, now: float) -> None:
            row = s.get(Contact, contact_id)
            if row is None:
                raise NotFound(f"no contact {contact_id}")
            move_in(s, row, ContactState.QUEUED, "enqueued", {"queue": queue})
            row.queue_id, row.priority = self.queue_ids[queue], priority
            row.criteria, row.enqueued_at = store.steps_to_json(steps), store.aware(now)

        await self._run(lambda now: self.engine.enqueue(
            ContactRequest(contact_id, contact.channel, queue, priority, now, steps), now),
            before)

    def queue_settings(self, name: str) -> QueueSettings:
        for q in self.settings.queues:
            if q.name == name:
                return q
        raise NotFound(f"no queue named {name!r}",
                       hint=f"queues: {', '.join(q.name for q in self.settings.queues)}")

    async def end(self, contact_id: str, state: ContactState, reason: str) -> None:
        """The contact ended outside routing (the caller hung up, the chat closed): record
        its final state and free whatever it held."""
        if state not in FINAL:
            raise ValueError(f"end() needs a final state, not {state}")

        def before(s: Session, now: float) -> None:
            row = s.get(Contact, contact_id)
            if row is not None and row.state not in {f.value for f in FINAL}:
                waited = now - store.epoch(row.enqueued_at) if row.enqueued_at else None
                move_in(s, row, state, reason, {"waited": waited} if waited else None)

        live = self.engine.contacts.get(contact_id)
        if live is not None and live.state in ("queued", "offered") \
                and state is ContactState.ABANDONED:
            self.stats.abandoned(live.queue)
        await self._run(lambda now: self.engine.remove(contact_id, now)
                        if contact_id in self.engine.contacts else [], before)

    # --- agents -----------------------------------------------------------------------

    async def set_state(self, agent_id: str, state: str, reason: str = "") -> None:
        if state not in ("available", "away", "offline"):
            raise InvalidTransition(f"an agent cannot set state {state!r}",
                                    hint="available, away (with a reason) or offline")
        live = self.engine.agents.get(agent_id)
        if live is None or live.state is AgentStatus.OFFLINE:
            await self.reload_agent(agent_id)  # edits to skills or queues apply at login
        await self._run(lambda now: self.engine.set_agent_state(agent_id, state, now, reason))

    async def accept(self, agent_id: str, offer_id: str) -> None:
        self._own_offer(agent_id, offer_id)
        await self._run(lambda now: self.engine.accept(offer_id, now))

    async def decline(self, agent_id: str, offer_id: str) -> None:
        self._own_offer(agent_id, offer_id)
        await self._run(lambda now: self.engine.decline(offer_id, now))

    async def complete(self, agent_id: str, contact_id: str) -> None:
        self._own_contact(agent_id, contact_id)
        await self._run(lambda now: self.engine.complete(contact_id, now))

    async def end_wrapup(self, agent_id: str, contact_id: str) -> None:
        self._own_contact(agent_id, contact_id)
        await self._run(lambda now: self.engine.end_wrapup(contact_id, now))

    async def transfer(self, agent_id: str, contact_id: str, queue: str | None = None,
                       to_agent: str | None = None, hold: float = 0.0) -> None:
        """Hand an assigned contact to a queue (its own by default) or to one agent first;
        `hold`: seconds it keeps its place before anyone may take it (a callback retry)."""
        self._own_contact(agent_id, contact_id)
        live = self.engine.contacts[contact_id]
        queue = queue or live.queue
        qs = self.queue_settings(queue)
        if to_agent is not None and to_agent not in self.engine.agents:
            await self.reload_agent(to_agent)  # known to the database, not yet to routing
        steps = (Step(Requirement(agent=to_agent), self.settings.transfer_wait),) \
            if to_agent else store.steps_from_settings(qs.steps)
        if hold > 0:
            steps = later(steps, hold, Step(HOLD, hold))

        def before(s: Session, now: float) -> None:
            row = s.get(Contact, contact_id)
            if row is not None:  # what a restart rebuilds the transferred contact from
                row.criteria = store.steps_to_json(later(steps, now - live.req.enqueued_at))

        await self._run(lambda now: self.engine.transfer(contact_id, queue, now, steps), before)

    async def consult(self, agent_id: str, contact_id: str, to_agent: str) -> None:
        """Warm transfer, first half: talk to `to_agent` while the customer holds."""
        self._own_contact(agent_id, contact_id)
        if to_agent not in self.engine.agents:
            await self.reload_agent(to_agent)
        await self._run(lambda now: self.engine.consult(contact_id, to_agent, now))

    async def end_consult(self, agent_id: str, contact_id: str, hand_over: bool) -> None:
        """Warm transfer, second half: hand the contact over, or take the customer back.
        Either agent of the consultation may end it."""
        live = self.engine.contacts.get(contact_id)
        if live is None or agent_id not in (live.agent, self.engine.consults.get(contact_id)):
            raise Forbidden(f"contact {contact_id} is not yours")
        await self._run(lambda now: self.engine.end_consult(contact_id, now, hand_over))

    async def take_over(self, by: str, contact_id: str) -> None:
        """A supervisor (`by`) takes a contact its agent holds (a chat taken over)."""
        if by not in self.engine.agents:
            await self.reload_agent(by)
        await self._run(lambda now: self.engine.take_over(contact_id, by, now))

    async def reload_agent(self, agent_id: str) -> None:
        """Apply an agent's edited skills, profile or capacity."""
        async with self._db.session(readonly=True) as s:
            row = await s.get(Agent, agent_id)
        if row is None:
            raise NotFound(f"no agent {agent_id}")
        config = store.agent_config(row, set(self.queue_ids), self.settings.max_misses)
        await self._run(lambda now: self.engine.upsert_agent(config, now))

    async def agent_status(self, agent_id: str) -> dict[str, Any]:
        if agent_id not in self.engine.agents:
            await self.reload_agent(agent_id)  # created since this controller started
        return agent_view(self.engine, agent_id)

    async def agents(self) -> list[dict[str, Any]]:
        async with self._db.session(readonly=True) as s:
            rows = list(await s.scalars(select(Agent).order_by(Agent.username)))
        out = []
        for row in rows:
            view = (agent_view(self.engine, row.id) if row.id in self.engine.agents
                    else {"id": row.id, "status": "offline", "offers": [], "contacts": []})
            out.append({"username": row.username, "name": row.display_name, **view})
        return out

    async def queues(self) -> list[dict[str, Any]]:
        now = self.now()
        return [queue_view(self.engine, self.stats, name, now) for name in self.engine.queues]

    def place_in_line(self, contact_id: str) -> tuple[int, float | None]:
        """Position (1: next) and expected wait in seconds, for announcements."""
        return (position(self.engine, contact_id),
                expected_wait(self.engine, self.stats, contact_id))

    # --- the machinery ----------------------------------------------------------------

    async def _run(self, op: Callable[[float], list[Event]], before: Before | None = None
                   ) -> list[Event]:
        async with self._lock:
            now = self.now()
            events = op(now)  # engine errors come before any change: nothing to undo
            self.stats.saw(self.engine, events, now)
            if events or before is not None:
                try:
                    await self._db.write(partial(_store, before, now, events,
                                                 self.queue_ids))
                except BaseException:
                    log.warning("routing: not stored; rebuilding from the database")
                    await asyncio.shield(self._rebuild())
                    raise
        self._told(events)
        return events

    def _told(self, events: list[Event]) -> None:
        for topic, message in messages(self.engine, events):
            self.publish(topic, message)
        for listener in self.listeners:
            task = asyncio.create_task(listener(events))
            task.add_done_callback(_log_failure)
        self._wake.set()

    async def _rebuild(self) -> None:
        snap = await store.load(self._db, self.settings.queues, self.settings.max_misses)
        engine = Engine(store.queue_config(q) for q in self.settings.queues)
        now = self.now()
        events: list[Event] = []
        for config, _, _ in snap.agents:
            events += engine.upsert_agent(config, now)
        for request, agent_id, state in snap.held:
            if agent_id in engine.agents:
                events += engine.adopt(request, agent_id, state, now)
        for request in snap.waiting:  # in their order, while every agent is still offline
            events += engine.enqueue(request, now)
        for config, state, reason in snap.agents:
            if state is not AgentStatus.OFFLINE:
                events += engine.set_agent_state(config.id, state, now, reason)
        await self._db.write(partial(_store, None, now, events, snap.queue_ids))
        self.engine, self.queue_ids = engine, snap.queue_ids
        if len(engine.contacts) >= _FREEZE_FROM:
            # The rebuilt engine (with 100,000 contacts waiting, a million objects) out
            # of the collector's reach: each full collection would walk all of it, a
            # 0.4-1.3 s pause inside whichever routing call triggers it.
            runtime.settle()
        self._told(events)  # offers made while rebuilding reach the panels now
        log.info("routing: %d agents, %d waiting, %d held", len(snap.agents),
                 len(snap.waiting), len(snap.held))

    async def _tick(self) -> None:
        while True:
            due = self.engine.next_due()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                timeout = None if due is None else max(0.0, due - self.now())
                await asyncio.wait_for(self._wake.wait(), timeout)
            if (due := self.engine.next_due()) is not None and due <= self.now():
                try:
                    await self._run(lambda now: self.engine.advance(now))
                except Exception:
                    log.exception("routing: timers failed; retrying in 1s")
                    await asyncio.sleep(1)

    async def _routing_facts(self, contact_id: str) -> tuple[Contact, str | None, str | None]:
        """The contact, its customer's tier and the agent who last served them (sticky)."""
        async with self._db.session(readonly=True) as s:
            contact = await s.get(Contact, contact_id)
            if contact is None:
                raise NotFound(f"no contact {contact_id}")
            if contact.state not in ("new", "ivr"):
                raise InvalidTransition(f"contact {contact_id} is {contact.state}: only a new "
                                        "contact or one in its IVR can be enqueued")
            if contact.customer_id is None:
                return contact, None, None
            tier = (await s.get(Customer, contact.customer_id) or Customer()).tier
            since = utcnow() - timedelta(hours=self.settings.sticky_within_hours)
            last = await s.scalar(
                select(Contact.agent_id)
                .where(Contact.customer_id == contact.customer_id, Contact.id != contact_id,
                       Contact.agent_id.is_not(None), Contact.updated_at >= since)
                .order_by(Contact.updated_at.desc()).limit(1))
        return contact, tier, last if last in self.engine.agents else None

    def _own_offer(self, agent_id: str, offer_id: str) -> None:
        offer = self.engine.offers.get(offer_id)
        if offer is None:
            raise NotFound(f"no pending offer {offer_id}",
                           hint="it was taken, declined, timed out or withdrawn")
        if offer.agent_id != agent_id:
            raise Forbidden(f"offer {offer_id} is not yours")

    def _own_contact(self, agent_id: str, contact_id: str) -> None:
        live = self.engine.contacts.get(contact_id)
        if live is None or live.agent != agent_id:
            raise Forbidden(f"contact {contact_id} is not yours")


def _store(before: Before | None, now: float, events: list[Event],
           queue_ids: dict[str, str], s: Session) -> None:
    """An operation's writes: a `Database.write` work, so it commits with whatever else
    is queued (one COMMIT, on SQLite one fsync, for the lot) in one hop to the writer
    thread, where an async session took 3-4 hops per statement and a COMMIT of its own."""
    if before is not None:
        before(s, now)
    store.persist(s, events, queue_ids)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("routing listener failed", exc_info=task.exception())
