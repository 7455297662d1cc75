"""The routing engine: one place where contacts of every channel meet agents.

It is pure and synchronous: each operation takes `now`, changes the in-memory state and
returns the events it caused, in order. The routing service persists those events before
it acknowledges anything and acts on them (rings a phone, pushes an offer); `ctl
simulate` drives the very same engine on a virtual clock. Whatever the operation, it
leaves the engine settled: no routable agent qualifies for a contact that waits.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ctl.errors import InvalidTransition, NotFound
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
    Overflowed,
    OverflowKind,
    QueueConfig,
    Released,
    Requeued,
    Step,
    StepExpired,
    Transferred,
    WrapupStarted,
)
from ctl.routing.policies import AgentIndex, AgentRt
from ctl.routing.queues import Bucket, Live, QueueState

_OVERFLOW_HOPS = 8  # a chain of queue overflows longer than this is a configuration loop


@dataclass(slots=True)
class Offer:
    id: str
    contact_id: str
    agent_id: str
    expires_at: float


class Engine:
    def __init__(self, queues: Iterable[QueueConfig] = ()) -> None:
        self.queues: dict[str, QueueState] = {}
        self.agents: dict[str, AgentRt] = {}
        self.contacts: dict[str, Live] = {}
        self.offers: dict[str, Offer] = {}
        self._index = AgentIndex()
        self._timers: list[tuple[float, int, str, str, object]] = []
        self._seq = itertools.count()
        self._out: list[Event] = []
        self._configs: dict[str, QueueConfig] = {}
        self._batch: list[Live] | None = None  # placements held until an instant is over
        self._batch_agents: list[AgentRt] = []
        # Buckets of contacts for one agent (sticky, transfers), by agent: theirs whatever
        # their routing profile says, and ahead of their queues.
        self._direct: dict[str, list[tuple[Bucket, int, float]]] = {}
        self.consults: dict[str, str] = {}  # contact id -> the agent consulted
        self.decisions = 0
        for q in queues:
            self.configure_queue(q)

    # --- configuration ------------------------------------------------------------

    def configure_queue(self, config: QueueConfig) -> None:
        found = self.queues.get(config.name)
        if found is None:
            self.queues[config.name] = QueueState(config)
        else:
            found.config = config
        self._configs[config.name] = config
        for agent in self.agents.values():
            self._index.reindex(agent, self._configs)

    def upsert_agent(self, config: AgentConfig, now: float) -> list[Event]:
        for entry in config.profile:
            if entry.queue not in self.queues:
                raise NotFound(f"agent {config.id}: no queue named {entry.queue!r}")
        for entry in config.profile:
            queue = self.queues[entry.queue]
            if entry.delay > 0 and entry.delay not in queue.delays:
                queue.delays.add(entry.delay)
                # Contacts already waiting need the wake-up a new delay brings.
                for live in self.contacts.values():
                    if live.queue == entry.queue and live.state in ("queued", "offered") \
                            and live.queued_at + entry.delay > now:
                        self._timer(live.queued_at + entry.delay, "delay", live.req.id,
                                    entry.queue)
        agent = self.agents.get(config.id)
        if agent is None:
            agent = self.agents[config.id] = AgentRt(config, now)
        agent.config = config
        self._settle_agent(agent, now)
        return self._flush()

    # --- agents -------------------------------------------------------------------

    def set_agent_state(self, agent_id: str, state: AgentStatus | str, now: float,
                        reason: str = "") -> list[Event]:
        agent = self._agent(agent_id)
        state = AgentStatus(state)
        if state is AgentStatus.WRAPUP:
            raise InvalidTransition("wrapup is not set by hand: it follows a contact")
        if state is AgentStatus.AVAILABLE and agent.state is not AgentStatus.AVAILABLE:
            agent.idle_since, agent.misses = now, 0
        agent.state, agent.reason = state, reason if state is AgentStatus.AWAY else ""
        self._out.append(AgentChanged(agent_id, self.status(agent_id), agent.reason))
        self._withdraw_from(agent, now)
        self._settle_agent(agent, now)
        return self._flush()

    def _withdraw_from(self, agent: AgentRt, now: float) -> None:
        """Offers to an agent who is no longer available go to others."""
        if agent.state is not AgentStatus.AVAILABLE:
            for offer in [o for o in self.offers.values() if o.agent_id == agent.config.id]:
                self._end_offer(offer, "withdrawn", now)

    def status(self, agent_id: str) -> AgentStatus:
        agent = self._agent(agent_id)
        if agent.state is AgentStatus.AVAILABLE and any(
                (live := self.contacts.get(c)) is not None and live.state == "wrapup"
                for c in agent.contacts):
            return AgentStatus.WRAPUP
        return agent.state

    # --- contacts -----------------------------------------------------------------

    def enqueue(self, request: ContactRequest, now: float) -> list[Event]:
        if request.id in self.contacts:
            raise InvalidTransition(f"contact {request.id} is already routed")
        ends = [s.expires_after for s in request.steps]
        bounded = [e for e in ends if e is not None]
        if None in ends[:-1] or bounded != sorted(bounded):
            raise ValueError(f"contact {request.id}: routing steps must expire in order, "
                             f"and only the last may never expire (got {ends})")
        live = Live(request)
        while (due := live.step_expiry()) is not None and due <= now:
            live.step += 1  # restored after a restart: the steps that ran out meanwhile
        self._admit(live, request.queue, now, hops=0)
        if request.id in self.contacts:
            self._schedule_step(live)
        return self._flush()

    def adopt(self, request: ContactRequest, agent_id: str, state: str, now: float,
              wrapup_ends: float | None = None) -> list[Event]:
        """A contact an agent already holds (found in the database after a restart)."""
        if state not in ("assigned", "wrapup"):
            raise ValueError(f"adopt() takes assigned or wrap-up contacts, not {state!r}")
        agent = self._agent(agent_id)
        live = Live(request)
        live.state, live.agent = state, agent_id
        self.contacts[request.id] = live
        agent.take(request.channel, request.id)
        if state == "wrapup":
            self._timer(wrapup_ends if wrapup_ends is not None else now, "wrapup", request.id,
                        None)
        self._index.reindex(agent, self._configs)
        return self._flush()

    def accept(self, offer_id: str, now: float) -> list[Event]:
        offer = self.offers.get(offer_id)
        if offer is None:
            raise NotFound(f"no pending offer {offer_id}", hint="it was taken, declined, "
                           "timed out or withdrawn")
        live = self.contacts[offer.contact_id]
        del self.offers[offer_id]
        live.offers.discard(offer_id)
        live.state, live.agent = "assigned", offer.agent_id
        self.queues[live.queue].waiting -= 1
        for other in [self.offers[o] for o in live.offers]:
            self._end_offer(other, "accepted_elsewhere", now)
        self.agents[offer.agent_id].misses = 0
        self._out.append(Assigned(live.req.id, offer.agent_id, offer_id))
        return self._flush()

    def decline(self, offer_id: str, now: float, reason: str = "declined") -> list[Event]:
        offer = self.offers.get(offer_id)
        if offer is None:
            raise NotFound(f"no pending offer {offer_id}")
        self._end_offer(offer, reason, now)
        return self._flush()

    def complete(self, contact_id: str, now: float) -> list[Event]:
        """The agent is done with the contact: wrap-up if the queue has it, else free."""
        live = self._contact(contact_id)
        if live.state != "assigned":
            raise InvalidTransition(f"contact {contact_id} is {live.state}, not assigned")
        self._drop_consult(live, now)
        wrapup = self.queues[live.queue].config.wrapup_seconds
        if wrapup > 0 and live.agent is not None:
            live.state = "wrapup"
            self._out.append(WrapupStarted(contact_id, live.agent, now + wrapup))
            self._timer(now + wrapup, "wrapup", contact_id, None)
            return self._flush()
        self._release(live, now)
        return self._flush()

    def end_wrapup(self, contact_id: str, now: float) -> list[Event]:
        live = self._contact(contact_id)
        if live.state != "wrapup":
            raise InvalidTransition(f"contact {contact_id} is {live.state}, not in wrap-up")
        self._release(live, now)
        return self._flush()

    def transfer(self, contact_id: str, queue: str, now: float,
                 steps: tuple[Step, ...] = ()) -> list[Event]:
        """The agent holding the contact hands it to `queue` (steps: e.g. one agent first);
        it keeps its age there, so it is not sent to the back of the line."""
        live = self._contact(contact_id)
        if live.state != "assigned" or live.agent is None:
            raise InvalidTransition(f"contact {contact_id} is {live.state}: only an assigned "
                                    "contact can be transferred")
        if queue not in self.queues:
            raise NotFound(f"no queue named {queue!r}")
        self._drop_consult(live, now)
        agent = self.agents[live.agent]
        agent.free(live.req.channel, contact_id)
        agent.idle_since = now
        self._out.append(Transferred(contact_id, live.agent, queue))
        since = now - live.req.enqueued_at  # steps count from now, not from the first enqueue
        moved = Live(replace(live.req, queue=queue, steps=tuple(
            Step(s.require, None if s.expires_after is None else s.expires_after + since)
            for s in steps)))
        del self.contacts[contact_id]
        self._admit(moved, queue, now, hops=1)
        if contact_id in self.contacts:
            self._schedule_step(moved)
        self._settle_agent(agent, now)
        return self._flush()

    def consult(self, contact_id: str, to_agent: str, now: float) -> list[Event]:
        """The agent holding the contact consults `to_agent` (warm transfer), who must be
        free for the contact's channel and is reserved until the consultation ends."""
        live = self._contact(contact_id)
        if live.state != "assigned" or live.agent is None:
            raise InvalidTransition(f"contact {contact_id} is {live.state}: only an assigned "
                                    "contact can be transferred")
        if contact_id in self.consults:
            raise InvalidTransition(f"contact {contact_id} is already in a consultation")
        other = self._agent(to_agent)
        if to_agent == live.agent or not other.routable(live.req.channel):
            raise InvalidTransition(f"agent {to_agent} is not free for a {live.req.channel} "
                                    "contact", hint="pick an available agent")
        other.take(live.req.channel, _consult_key(contact_id))
        self.consults[contact_id] = to_agent
        self._index.reindex(other, self._configs)
        self._out.append(Consulting(contact_id, live.agent, to_agent))
        return self._flush()

    def end_consult(self, contact_id: str, now: float, hand_over: bool) -> list[Event]:
        live = self._contact(contact_id)
        if contact_id not in self.consults or live.agent is None:
            raise NotFound(f"contact {contact_id} is not in a consultation")
        to_agent = self.consults.pop(contact_id)
        other, channel, held_by = self.agents[to_agent], live.req.channel, live.agent
        other.free(channel, _consult_key(contact_id))
        self._out.append(ConsultEnded(contact_id, held_by, to_agent, hand_over))
        if hand_over:
            old = self.agents[held_by]
            old.free(channel, contact_id)
            old.idle_since = now
            other.take(channel, contact_id)
            live.agent = to_agent
            self._settle_agent(old, now)
        self._settle_agent(other, now)
        return self._flush()

    def _drop_consult(self, live: Live, now: float) -> None:
        """The contact ends or moves on mid-consultation: the consulted agent is free."""
        to_agent = self.consults.pop(live.req.id, None)
        if to_agent is not None:
            other = self.agents[to_agent]
            other.free(live.req.channel, _consult_key(live.req.id))
            self._out.append(ConsultEnded(live.req.id, live.agent or "", to_agent, False))
            self._settle_agent(other, now)

    def remove(self, contact_id: str, now: float) -> list[Event]:
        """The contact leaves routing whatever its state (abandoned, closed, ticketed)."""
        live = self._contact(contact_id)
        self._drop_consult(live, now)
        for offer in [self.offers[o] for o in live.offers]:
            self._end_offer(offer, "withdrawn", now, requeue=False)
        if live.state in ("assigned", "wrapup"):
            self._release(live, now)
        else:
            self._unqueue(live)
            self.queues[live.queue].waiting -= 1
            del self.contacts[contact_id]
        return self._flush()

    # --- time ---------------------------------------------------------------------

    def next_due(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def advance(self, now: float) -> list[Event]:
        """Everything due at or before `now`, in time order."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            # Everything due at one instant happens before any contact is placed, so that
            # two contacts widening at the same instant are served in their order.
            when = timers[0][0]
            self._batch = []
            while timers and timers[0][0] == when:
                _, _, kind, ref, token = heapq.heappop(timers)
                getattr(self, f"_on_{kind}")(ref, token, when)
            batch, self._batch = self._batch, None
            self._resolve(batch, when)
        return self._flush()

    def _resolve(self, batch: list[Live], now: float) -> None:
        """Contacts that became placeable at one instant, best first. Each qualified agent
        takes whatever is best for it, which may be another contact of the batch."""
        agents, self._batch_agents = self._batch_agents, []
        for live in sorted({id(c): c for c in batch}.values(), key=lambda c: c.order):
            if live.state == "queued" and self.contacts.get(live.req.id) is live:
                for agent in self._qualified(live, now):
                    self._settle_agent(agent, now)
        for agent in agents:
            self._settle_agent(agent, now)

    def _on_offer(self, offer_id: str, _token: object, when: float) -> None:
        offer = self.offers.get(offer_id)
        if offer is None:
            return
        agent = self.agents[offer.agent_id]
        agent.misses += 1
        if agent.misses >= agent.config.max_misses and agent.state is AgentStatus.AVAILABLE:
            agent.state, agent.reason = AgentStatus.AWAY, "missed"
            self._out.append(AgentChanged(agent.config.id, AgentStatus.AWAY, "missed"))
        self._end_offer(offer, "timeout", when)
        self._withdraw_from(agent, when)

    def _on_step(self, contact_id: str, step: object, when: float) -> None:
        live = self.contacts.get(contact_id)
        if live is None or live.step != step or live.state not in ("queued", "offered") \
                or live.step_expiry() != when:  # a timer of an earlier stay (transfer)
            return
        live.step += 1
        self._out.append(StepExpired(contact_id, live.step))
        self._schedule_step(live)
        if live.state == "queued":
            self._unqueue(live)
            self._queue(live)
            self._place(live, when)

    def _on_maxwait(self, contact_id: str, queue: object, when: float) -> None:
        live = self.contacts.get(contact_id)
        if live is None or live.queue != queue or live.state != "queued":
            return  # an offered contact is checked again if it comes back
        max_wait = self.queues[live.queue].config.max_wait
        if max_wait is None or live.queued_at + max_wait > when:
            return  # a timer of an earlier stay in this queue
        self._unqueue(live)
        self.queues[live.queue].waiting -= 1
        self._overflow(live, "max_wait", when, hops=0)

    def _on_wrapup(self, contact_id: str, _token: object, when: float) -> None:
        live = self.contacts.get(contact_id)
        if live is not None and live.state == "wrapup":
            self._release(live, when)

    def _on_delay(self, contact_id: str, queue: object, when: float) -> None:
        live = self.contacts.get(contact_id)
        if live is not None and live.queue == queue and live.state == "queued":
            self._place(live, when)  # agents who see this queue late may take it now

    # --- the two decisions --------------------------------------------------------

    def _place(self, live: Live, now: float) -> None:
        """A contact that may qualify for routable agents: offer it to the best."""
        if self._batch is not None:
            self._batch.append(live)
            return
        chosen = self._qualified(live, now)
        for agent in chosen:
            self._offer(live, agent, now)
        for agent in chosen:
            self._index.reindex(agent, self._configs)

    def _qualified(self, live: Live, now: float) -> list[AgentRt]:
        """The best routable agents for `live` by its queue's policy (several: ring-all)."""
        queue = self.queues[live.queue].config
        channel, requirement = live.req.channel, live.requirement
        want = queue.ring_count if queue.policy == "ring_all" else 1
        waited = now - live.queued_at
        chosen: list[AgentRt] = []
        for agent_id in self._index.candidates(queue, channel, requirement):
            agent = self.agents.get(agent_id)
            if (agent is None or agent_id in live.excluded or not agent.routable(channel)
                    or not requirement.admits(agent.config)
                    or (requirement.agent is None and _delay(agent, live.queue) > waited)):
                continue
            chosen.append(agent)
            if len(chosen) == want:
                break
        return chosen

    def _feed(self, agent: AgentRt, now: float) -> None:
        """An agent with room: give it the best contacts it qualifies for, while it has room.

        Its own buckets (contacts for it alone) come first, then for each queue of its
        profile and channel it has room on, the shelves of bucket heads it may qualify for
        (see queues.py), each walked best first until a head it qualifies for or one no
        better than what it found."""
        contacts = self.contacts
        cfg = agent.config
        agent_id = cfg.id
        pairs = agent.pairs
        while True:
            best: tuple[int, tuple[int, float, int, str]] | None = None
            best_live: Live | None = None
            for bucket, priority, _ in self._direct.get(agent_id, ()):
                if not bucket.size or not agent.routable(bucket.channel):
                    continue
                first = bucket.head(contacts)
                if first is not None and agent_id in first.excluded:
                    first = next((c for c in bucket.in_order(contacts)
                                  if agent_id not in c.excluded), None)
                if first is not None and (best is None or (priority, first.order) < best):
                    best, best_live = (priority, first.order), first
            channels = [c for c in cfg.capacity if agent.routable(c)]
            for entry in cfg.profile if channels else ():
                priority, delay = entry.priority, entry.delay
                if best is not None and priority > best[0]:
                    continue
                queue = self.queues[entry.queue]
                for channel in channels:
                    shelves = queue.shelves.get(channel)
                    if not shelves:
                        continue
                    for shelf in agent.shelves(shelves):
                        if best is not None and (priority, shelf[0][0]) >= best:
                            continue  # its best is no better than what was found
                        for order, bucket in shelf:
                            if best is not None and (priority, order) >= best:
                                break
                            if not (bucket.need <= pairs and (
                                    bucket.skills_only or bucket.requirement.admits(cfg))):
                                continue  # a level, a language or a tier it lacks
                            top = found = contacts[order[3]]
                            if agent_id in top.excluded or (
                                    delay and now - top.queued_at < delay):
                                # The slow walk, for agents who declined the head or see
                                # this queue late: the first contact, in order, it may take.
                                later = next((c for c in bucket.in_order(contacts)
                                              if agent_id not in c.excluded
                                              and now - c.queued_at >= delay), None)
                                if later is None:
                                    continue
                                found = later
                            key = (priority, found.order)
                            if best is None or key < best:
                                best, best_live = key, found
                            if found is top:
                                break  # every later head on this shelf is worse
            if best_live is None:
                return
            self._offer(best_live, agent, now)

    # --- moves --------------------------------------------------------------------

    def _admit(self, live: Live, queue_name: str, now: float, hops: int) -> None:
        queue = self.queues.get(queue_name)
        if queue is None:
            raise NotFound(f"contact {live.req.id}: no queue named {queue_name!r}")
        # A new contact's wait started when it was enqueued (earlier, if restored after a
        # restart); an overflowed one starts again in its new queue.
        live.queue, live.queued_at = queue_name, now if hops else min(now, live.req.enqueued_at)
        cfg = queue.config
        if cfg.max_length is not None and queue.waiting >= cfg.max_length:
            self._overflow(live, "max_length", now, hops)
            return
        self.contacts[live.req.id] = live
        queue.waiting += 1
        self._queue(live)
        if cfg.max_wait is not None:
            self._timer(live.queued_at + cfg.max_wait, "maxwait", live.req.id, queue_name)
        for delay in queue.delays:
            self._timer(live.queued_at + delay, "delay", live.req.id, queue_name)
        self._place(live, now)

    def _overflow(self, live: Live, reason: str, now: float, hops: int) -> None:
        overflow = self.queues[live.queue].config.overflow
        self._out.append(Overflowed(live.req.id, live.queue, overflow, reason))
        self.contacts.pop(live.req.id, None)
        if (overflow is not None and overflow.kind is OverflowKind.QUEUE
                and hops < _OVERFLOW_HOPS and overflow.target in self.queues):
            self._admit(live, overflow.target, now, hops + 1)

    def _queue(self, live: Live) -> None:
        queue = self.queues[live.queue]
        bucket, new = queue.bucket(live.req.channel, live.requirement)
        target = live.requirement.agent
        if new and target is not None:
            self._direct.setdefault(target, []).append((bucket, 0, 0.0))
        live.state = "queued"
        bucket.push(live)

    def _unqueue(self, live: Live) -> None:
        if live.bucket is not None:
            live.bucket.drop(live, self.contacts)

    def _offer(self, live: Live, agent: AgentRt, now: float) -> None:
        self._unqueue(live)
        live.state = "offered"
        queue = self.queues[live.queue].config
        offer = Offer(f"o{next(self._seq)}", live.req.id, agent.config.id,
                      now + queue.offer_timeout)
        self.offers[offer.id] = offer
        live.offers.add(offer.id)
        agent.take(live.req.channel, live.req.id)
        agent.last_offer = next(self._seq)
        self.decisions += 1
        self._timer(offer.expires_at, "offer", offer.id, None)
        self._out.append(Offered(offer.id, live.req.id, agent.config.id, offer.expires_at))

    def _end_offer(self, offer: Offer, reason: str, now: float, requeue: bool = True) -> None:
        del self.offers[offer.id]
        live = self.contacts[offer.contact_id]
        live.offers.discard(offer.id)
        agent = self.agents[offer.agent_id]
        agent.free(live.req.channel, live.req.id)
        self._out.append(OfferEnded(offer.id, live.req.id, agent.config.id, reason))
        if reason not in ("withdrawn", "accepted_elsewhere"):
            live.excluded.add(agent.config.id)  # declined, timed out, unreachable...
        if requeue and not live.offers and live.state == "offered":
            max_wait = self.queues[live.queue].config.max_wait
            if max_wait is not None and now - live.queued_at >= max_wait:
                self.queues[live.queue].waiting -= 1
                self._overflow(live, "max_wait", now, hops=0)
            else:
                self._queue(live)  # its old place: the order key never changes
                self._out.append(Requeued(live.req.id, reason))
                self._place(live, now)
        self._settle_agent(agent, now)

    def _release(self, live: Live, now: float) -> None:
        agent_id = live.agent
        del self.contacts[live.req.id]
        if agent_id is None:
            return
        agent = self.agents[agent_id]
        agent.free(live.req.channel, live.req.id)
        agent.idle_since = now
        self._out.append(Released(live.req.id, agent_id))
        self._settle_agent(agent, now)

    def _settle_agent(self, agent: AgentRt, now: float) -> None:
        if agent.state is AgentStatus.AVAILABLE:
            if self._batch is not None:
                self._batch_agents.append(agent)  # fed once the instant's contacts are
            else:
                self._feed(agent, now)
        self._index.reindex(agent, self._configs)

    # --- bookkeeping --------------------------------------------------------------

    def _schedule_step(self, live: Live) -> None:
        expiry = live.step_expiry()
        if expiry is not None:
            self._timer(expiry, "step", live.req.id, live.step)

    def _timer(self, when: float, kind: str, ref: str, token: object) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), kind, ref, token))

    def _agent(self, agent_id: str) -> AgentRt:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise NotFound(f"no agent {agent_id} in routing") from None

    def _contact(self, contact_id: str) -> Live:
        try:
            return self.contacts[contact_id]
        except KeyError:
            raise NotFound(f"contact {contact_id} is not in routing") from None

    def _flush(self) -> list[Event]:
        out, self._out = self._out, []
        return out


def _consult_key(contact_id: str) -> str:
    return f"consult:{contact_id}"  # what the consulted agent holds meanwhile


def _delay(agent: AgentRt, queue: str) -> float:
    for entry in agent.config.profile:
        if entry.queue == queue:
            return entry.delay
    return 0.0


__all__ = ["Bucket", "Engine", "Offer"]
