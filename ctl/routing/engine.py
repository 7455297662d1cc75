"""The routing engine: one place where contacts of every channel meet agents.

It is pure and synchronous: each operation takes `now`, changes the in-memory state and
returns the events it caused, in order. The routing service persists those events before
it acknowledges anything and acts on them (rings a phone, pushes an offer); `ctl
simulate` drives the very same engine on a virtual clock. Whatever the operation, it
leaves the engine settled: no routable agent qualifies for a contact that waits.
"""

from __future__ import annotations

from dataclasses import replace

from ctl.errors import InvalidTransition, NotFound
from ctl.routing.core import Core, Offer
from ctl.routing.model import (
    AgentChanged,
    AgentConfig,
    AgentStatus,
    Assigned,
    ConsultEnded,
    Consulting,
    ContactRequest,
    Event,
    Step,
    TakenOver,
    Transferred,
    WrapupStarted,
    later,
)
from ctl.routing.policies import AgentRt
from ctl.routing.queues import Live


class Engine(Core):
    """The operations: configuration, agents, contacts. Each returns its events."""

    # --- configuration ------------------------------------------------------------

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
                           "timed out or withdrawn", reason="offer_gone")
        live = self.contacts[offer.contact_id]
        del self.offers[offer_id]
        live.drop_offer(offer_id)
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
        live = self.contacts.get(contact_id)
        if live is None:
            live = self._contact(contact_id)  # raises
        if live.state != "assigned":
            raise InvalidTransition(f"contact {contact_id} is {live.state}, not assigned")
        if self.consults:
            self._drop_consult(live, now)
        wrapup = self._configs[live.queue].wrapup_seconds
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
                                    "contact can be transferred", reason="transfer_state",
                                    params={"state": str(live.state)})
        if queue not in self.queues:
            raise NotFound(f"no queue named {queue!r}", reason="no_queue",
                           params={"name": queue})
        self._drop_consult(live, now)
        agent = self.agents[live.agent]
        agent.free(live.req.channel, contact_id)
        agent.idle_since = now
        self._out.append(Transferred(contact_id, live.agent, queue))
        # Steps count from now, not from the first enqueue.
        moved = Live(replace(live.req, queue=queue,
                             steps=later(steps, now - live.req.enqueued_at)))
        moved.callback = live.callback
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
                                    "contact can be transferred", reason="transfer_state",
                                    params={"state": str(live.state)})
        if contact_id in self.consults:
            raise InvalidTransition(f"contact {contact_id} is already in a consultation")
        other = self._agent(to_agent)
        if to_agent == live.agent or not other.routable(live.req.channel):
            raise InvalidTransition(f"agent {to_agent} is not free for a {live.req.channel} "
                                    "contact", hint="pick an available agent",
                                    reason="agent_busy")
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

    def take_over(self, contact_id: str, by: str, now: float) -> list[Event]:
        """A supervisor takes an assigned contact from its agent, who is free of it at
        once. `by` needs room for the contact's channel (its capacity), not availability:
        a supervisor away from routing still takes a chat by hand."""
        live = self._contact(contact_id)
        if live.state != "assigned" or live.agent is None:
            raise InvalidTransition(f"contact {contact_id} is {live.state}: only a contact "
                                    "an agent holds can be taken over")
        new = self._agent(by)
        channel = live.req.channel
        if by == live.agent:
            raise InvalidTransition(f"contact {contact_id} is already yours")
        if not new.has_room(channel):
            raise InvalidTransition(f"agent {by} has no room for a {channel} contact",
                                    hint=f"raise their {channel} capacity (ctl agents set "
                                    f"USER --capacity {channel}=N) or finish a contact")
        self._drop_consult(live, now)
        old, held_by = self.agents[live.agent], live.agent
        old.free(channel, contact_id)
        old.idle_since = now
        new.take(channel, contact_id)
        live.agent = by
        self._index.reindex(new, self._configs)
        self._out.append(TakenOver(contact_id, held_by, by))
        self._settle_agent(old, now)
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


def _consult_key(contact_id: str) -> str:
    return f"consult:{contact_id}"  # what the consulted agent holds meanwhile


__all__ = ["Engine", "Offer"]
