"""The routing engine's machinery: its state, the two decisions (which agent for a contact,
which contact for an agent), the moves between states, and time.

`Engine` (engine.py) adds the operations callers use; everything here keeps the engine
settled: no routable agent qualifies for a contact that waits.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Final

from ctl.errors import NotFound
from ctl.routing.model import (
    AgentChanged,
    AgentStatus,
    Event,
    Offered,
    OfferEnded,
    Overflowed,
    OverflowKind,
    QueueConfig,
    Released,
    Requeued,
    StepExpired,
)
from ctl.routing.policies import AVAILABLE, AgentIndex, AgentRt
from ctl.routing.queues import EMPTY, Bucket, Live, QueueState, before

_OVERFLOW_HOPS: Final = 8  # a chain of queue overflows longer than this is a configuration loop


class Offer:
    # A plain class, not a dataclass: compiled by mypyc, its __init__ is native code
    # (a dataclass's is generated at import, and interpreted), and one is made per decision.
    __slots__ = ("agent_id", "contact_id", "expires_at", "id")

    def __init__(self, id: str, contact_id: str, agent_id: str, expires_at: float) -> None:
        self.id = id
        self.contact_id = contact_id
        self.agent_id = agent_id
        self.expires_at = expires_at


class Core:
    def __init__(self, queues: Iterable[QueueConfig] = ()) -> None:
        self.queues: dict[str, QueueState] = {}
        self.agents: dict[str, AgentRt] = {}
        self.contacts: dict[str, Live] = {}
        self.offers: dict[str, Offer] = {}
        self._index = AgentIndex()
        self._timers: list[tuple[float, int, str, str, object]] = []
        self._seq = 0  # offer ids, round-robin turns, timer ties: a plain int, read inline
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

    def configure_queue(self, config: QueueConfig) -> None:
        found = self.queues.get(config.name)
        if found is None:
            self.queues[config.name] = QueueState(config)
        else:
            found.config = config
        self._configs[config.name] = config
        for agent in self.agents.values():
            self._index.reindex(agent, self._configs)

    def _withdraw_from(self, agent: AgentRt, now: float) -> None:
        """Offers to an agent who is no longer available go to others."""
        if agent.state is not AgentStatus.AVAILABLE:
            for offer in [o for o in self.offers.values() if o.agent_id == agent.config.id]:
                self._end_offer(offer, "withdrawn", now)


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
            # An agent fed may take a better contact for it (one for it alone, a later one
            # of the batch) and leave this one waiting: the next qualified agents get their
            # turn, for as long as the agents fed take something.
            while live.state == "queued" and self.contacts.get(live.req.id) is live:
                chosen = self._qualified(live, now)
                taken = sum(agent.total for agent in chosen)
                for agent in chosen:
                    self._settle_agent(agent, now)
                if sum(agent.total for agent in chosen) == taken:
                    break
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
        if max_wait is None or live.queued_at + max_wait > when or live.callback:
            return  # a timer of an earlier stay in this queue
        if self._to_callback(live, "max_wait"):
            return  # stays where it is
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
        chosen: list[AgentRt] = []
        for agent_id in self._index.candidates(queue, channel, requirement):
            agent = self.agents.get(agent_id)
            if (agent is None or agent_id in live.excluded or not agent.routable(channel)
                    or not requirement.admits(agent.config)
                    # As the delay's timer computes it: a subtraction could round below it.
                    or (requirement.agent is None
                        and live.queued_at + _delay(agent, live.queue) > now)):
                continue
            chosen.append(agent)
            if len(chosen) == want:
                break
        return chosen

    def _feed(self, agent: AgentRt, now: float) -> None:
        """An agent with room: give it the best contacts it qualifies for, while it has room.

        Its own buckets (contacts for it alone) come first, then for each queue of its
        profile (lowest priority number first) and channel it has room on, the shelves of
        bucket heads it may qualify for (see queues.py), each walked best first until a
        head it qualifies for or one no better than what it found. The best is the least
        (profile priority, contact order): profile entries of a higher priority number than
        the best found so far are not looked at."""
        queues = self.queues
        cfg = agent.config
        agent_id = cfg.id
        direct = self._direct.get(agent_id)
        while True:
            best_priority = 0
            best_live: Live | None = None
            for bucket, priority, _ in direct or ():
                if not bucket.size or not agent.routable(bucket.channel):
                    continue
                first = bucket.top
                if first is not None and agent_id in first.excluded:
                    first = next((c for c in bucket.in_order()
                                  if agent_id not in c.excluded), None)
                if first is not None and (best_live is None or (priority, first.order)
                                          < (best_priority, best_live.order)):
                    best_priority, best_live = priority, first
            channels = agent.open_channels()
            if not channels:
                if best_live is None:
                    return
                self._offer(best_live, agent, now)
                continue
            levels = agent.levels
            for at, entry in enumerate(agent.profile_order()):
                priority = entry.priority
                # What was found so far, as (rank, order): EMPTY ranks after any contact.
                bound_rank, bound = EMPTY, 0
                if best_live is not None:
                    if priority > best_priority:
                        break  # the rest of the profile comes after what was found
                    if priority == best_priority:
                        bound_rank, bound = best_live.rank, best_live.order
                delay = entry.delay
                walks = agent.walks[at]
                for channel in channels:
                    known = walks.get(channel)
                    if known is not None and known[0] < 0:
                        mine = known[1]  # complete for good (AgentRt.shelves)
                    else:
                        shelves = queues[entry.queue].shelves.get(channel)
                        if not shelves:
                            continue
                        mine = agent.shelves(at, channel, shelves)
                    for shelf in mine:
                        first_rank = shelf.best
                        if first_rank == EMPTY or (first_rank >= bound_rank and (
                                first_rank > bound_rank or shelf.buckets[0].listed >= bound)):
                            continue  # empty, or its best is no better than what was found
                        for bucket in shelf.buckets:
                            rank = bucket.rank
                            if rank >= bound_rank and (rank > bound_rank or bucket.listed >= bound):
                                break
                            # The shelf is of skills it has: a level, a language or a
                            # tier it lacks may still rule it out.
                            if bucket.simple:
                                if levels.get(bucket.skill1, 0) < bucket.level1:
                                    continue  # (level1 0: no skill required)
                                if bucket.level2 and levels.get(bucket.skill2, 0) < bucket.level2:
                                    continue
                            elif not bucket.requirement.admits(cfg):
                                continue
                            top = bucket.top
                            assert top is not None  # listed: it has a head
                            found = top
                            if agent_id in top.excluded or (
                                    delay and top.queued_at + delay > now):
                                # The slow walk, for agents who declined the head or see
                                # this queue late: the first contact, in order, it may take.
                                later = next((c for c in bucket.in_order()
                                              if agent_id not in c.excluded
                                              and c.queued_at + delay <= now), None)
                                if later is None:
                                    continue
                                found = later
                            if before(found.rank, found.order, bound_rank, bound):
                                bound_rank, bound = found.rank, found.order
                                best_priority, best_live = priority, found
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
        if cfg.max_length is not None and queue.waiting >= cfg.max_length \
                and not live.callback and not self._to_callback(live, "max_length"):
            self._overflow(live, "max_length", now, hops)
            return
        self.contacts[live.req.id] = live
        queue.waiting += 1
        self._queue(live)
        if cfg.max_wait is not None and not live.callback:
            self._timer(live.queued_at + cfg.max_wait, "maxwait", live.req.id, queue_name)
        for delay in queue.delays:
            self._timer(live.queued_at + delay, "delay", live.req.id, queue_name)
        self._place(live, now)

    def _to_callback(self, live: Live, reason: str) -> bool:
        """A queue that overflows to callbacks keeps the contact, in its place: its caller
        leaves the line to be called back when their turn comes. A callback holds no line,
        so it neither overflows again nor counts against max_length."""
        overflow = self.queues[live.queue].config.overflow
        if overflow is None or overflow.kind is not OverflowKind.CALLBACK:
            return False
        live.callback = True
        self._out.append(Overflowed(live.req.id, live.queue, overflow, reason))
        return True

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
            live.bucket.drop(live)

    def _offer(self, live: Live, agent: AgentRt, now: float) -> None:
        bucket = live.bucket
        if bucket is not None:
            bucket.drop(live)
        live.state = "offered"
        seq = self._seq
        offer_id = f"o{seq}"
        contact_id, agent_id = live.req.id, agent.config.id
        expires_at = now + self._configs[live.queue].offer_timeout
        self.offers[offer_id] = Offer(offer_id, contact_id, agent_id, expires_at)
        live.offers = (*live.offers, offer_id) if live.offers else (offer_id,)
        agent.take(live.req.channel, contact_id)
        agent.last_offer = seq + 1
        self.decisions += 1
        self._seq = seq + 3
        heapq.heappush(self._timers, (expires_at, seq + 2, "offer", offer_id, None))
        self._out.append(Offered(offer_id, contact_id, agent_id, expires_at))

    def _end_offer(self, offer: Offer, reason: str, now: float, requeue: bool = True) -> None:
        del self.offers[offer.id]
        live = self.contacts[offer.contact_id]
        live.drop_offer(offer.id)
        agent = self.agents[offer.agent_id]
        agent.free(live.req.channel, live.req.id)
        self._out.append(OfferEnded(offer.id, live.req.id, agent.config.id, reason))
        if reason not in ("withdrawn", "accepted_elsewhere"):
            live.excluded = live.excluded | {agent.config.id}  # declined, timed out, unreachable...
        if requeue and not live.offers and live.state == "offered":
            max_wait = self.queues[live.queue].config.max_wait
            ran_out = max_wait is not None and live.queued_at + max_wait <= now \
                and not live.callback
            if ran_out and not self._to_callback(live, "max_wait"):
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
        if agent.state is AVAILABLE:
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
        seq = self._seq
        self._seq = seq + 1
        heapq.heappush(self._timers, (when, seq, kind, ref, token))

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



def _delay(agent: AgentRt, queue: str) -> float:
    for entry in agent.config.profile:
        if entry.queue == queue:
            return entry.delay
    return 0.0


__all__ = ["Bucket", "Core", "Offer"]
