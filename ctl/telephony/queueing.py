"""Calls waiting in routing's queues: music and announcements for the caller, the agent's
phone rung for each offer, caller and agent bridged and recorded once the agent answers.

The routing engine stays the one authority: an offer ends when the engine says so (its
timeout, a decline, the contact leaving), and the phone that rang for it is hung up then.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ctl.agents.service import endpoint_name
from ctl.asterisk import webrtc
from ctl.contacts.states import ContactState
from ctl.errors import CtlError, NoSuchChannel, NotFound, TelephonyError
from ctl.routing.model import (
    ConsultEnded,
    Consulting,
    Event,
    Offered,
    OfferEnded,
    Overflowed,
    Step,
    Transferred,
)
from ctl.routing.service import RoutingService
from ctl.store.db import Database
from ctl.store.models import Agent
from ctl.telephony.ari import AriClient
from ctl.telephony.calls import LEG, CallManager
from ctl.telephony.consult import CONSULT, CONSULT_ENDED, Consultation
from ctl.telephony.events import channel_of
from ctl.telephony.session import CallSession

log = logging.getLogger(__name__)

OFFER, OFFER_ENDED, TRANSFERRED = "CtlOffer", "CtlOfferEnded", "CtlTransferred"
OVERFLOWED = "CtlOverflowed"
# What an overflowed caller hears before the line is closed (voicemail and tickets take
# the contact from its `overflowed` state once they exist).
OVERFLOW_PROMPT = ["sound:im-sorry", "sound:please-try-call-later"]
_CAUSE_BUSY, _CAUSE_REJECTED = 17, 21


@dataclass(frozen=True)
class Hold:
    """A waiting caller's experience, as a flow's enqueue step chose it."""

    announce: bool = True  # position and expected wait every announce_every seconds
    callback: bool | None = None  # "press 1 to be called back"; None: the queue's setting
    music: str = "default"  # Asterisk music-on-hold class


class VoiceQueues:
    def __init__(self, ari: AriClient, routing: RoutingService, db: Database,
                 calls: CallManager, announce_every: float = 30.0) -> None:
        self.ari, self.routing, self._db = ari, routing, db
        self.announce_every = announce_every
        self.waiting: dict[str, CallSession] = {}  # contact id -> the caller's session
        self.legs = calls.legs  # agent phone channel id -> caller's session
        self._endpoints: dict[str, str] = {}  # agent id -> username
        self.contacts = calls.contacts
        # Set by the callback service: the caller pressed 1 to be called back.
        self.on_callback: Callable[[CallSession], Awaitable[None]] | None = None
        # Contacts whose caller left to be called back (kept by the callback service).
        self.called_back: set[str] = set()
        self.holds: dict[str, Hold] = {}  # contact id -> its flow's choices, while waiting
        # Contacts completed when their agent left while the caller's flow went on.
        self.served: set[str] = set()
        calls.on_close = self.finished
        routing.listeners.append(self.on_routing)

    # --- from routing ---------------------------------------------------------------

    async def on_routing(self, events: list[Event]) -> None:
        """Routing listener: offers of voice contacts go to the session of their call."""
        kinds = {Offered: OFFER, OfferEnded: OFFER_ENDED, Transferred: TRANSFERRED,
                 Consulting: CONSULT, ConsultEnded: CONSULT_ENDED, Overflowed: OVERFLOWED}
        for e in events:
            kind = kinds.get(type(e))
            if kind is not None and e.contact_id in self.waiting:  # type: ignore[union-attr]
                session = self.waiting[e.contact_id]  # type: ignore[union-attr]
                session.queue.put_nowait({"type": kind, "event": e})

    # --- the caller's side ----------------------------------------------------------

    async def wait(self, call: CallSession, queue: str, priority: int = 0,
                   steps: tuple[Step, ...] | None = None, keep_caller: bool = False,
                   hold: Hold | None = None) -> str:
        """Queue the call and return once it ended with an agent ("completed") — or raise
        Hangup if the caller leaves first (the call manager then records the abandon).
        `keep_caller`: when the agent hangs up, the contact is completed (the agent's
        wrap-up starts) and the caller stays on the line for the rest of the flow.
        `hold`: what the caller hears while waiting (default: the queue's settings)."""
        contact = call.info.contact_id
        assert contact is not None
        if hold is not None:
            self.holds[contact] = hold
        # Routing moves the contact's state from here on: the IVR's held log lines go
        # first, and later lines are written as they come (they interleave with routing's).
        await call.flush_logs(stop_holding=True)
        self.waiting[contact] = call
        rang: dict[str, tuple[str, str]] = {}  # offer id -> (agent id, phone channel id)
        try:
            if contact not in self.routing.engine.contacts:
                await self.routing.enqueue(contact, queue, priority=priority, steps=steps)
            elif self.routing.engine.contacts[contact].state == "assigned" and \
                    await self.talk(call, None, keep_caller) != TRANSFERRED:  # adopted
                return "completed"
            await call.answer()
            while True:  # waiting, then talking; again after each transfer
                answered = await self._hold(call, rang)
                if isinstance(answered, str):  # to be called back, or overflowed
                    await call.hangup()
                    return answered
                if await self.talk(call, answered, keep_caller) != TRANSFERRED:
                    return "completed"
        finally:
            self.waiting.pop(contact, None)
            self.holds.pop(contact, None)
            for _, leg in rang.values():
                self.legs.pop(leg, None)
                with contextlib.suppress(TelephonyError):
                    await self.ari.hangup(leg)

    async def _hold(self, call: CallSession, rang: dict[str, tuple[str, str]]
                    ) -> tuple[str, str] | str:
        """Music and announcements until an agent answers: (agent id, phone channel), or
        "callback" when the caller chose to be called back, "overflowed" when the queue
        gave up on them."""
        hold = self.holds.get(call.info.contact_id or "", Hold())
        await self.ari.start_moh(call.id, hold.music)
        announce_at = time.monotonic() + self.announce_every
        while True:
            try:  # without announcements, only events wake the caller's wait
                event = await call.next_event(max(0.0, announce_at - time.monotonic())
                                              if hold.announce else None)
            except TimeoutError:
                await self._announce(call, hold.music)
                announce_at = time.monotonic() + self.announce_every
                continue
            if event["type"] == "ChannelDtmfReceived" and event.get("digit") == "1" \
                    and channel_of(event) == call.id and self._callbacks_allowed(call):
                return await self._call_back(call)
            if event["type"] == OVERFLOWED and (
                    (where := event["event"].overflow) is None or where.kind != "queue"):
                if where is not None and where.kind == "callback":
                    if self.on_callback is not None and call.info.caller_number:
                        return await self._call_back(call)  # it keeps its place
                    await self.routing.end(call.info.contact_id or "", ContactState.OVERFLOWED,
                                           "no_number_to_call_back")
                with contextlib.suppress(TelephonyError):
                    await self.ari.stop_moh(call.id)
                await call.play(OVERFLOW_PROMPT)
                return "overflowed"
            answered = await self._on_event(call, event, rang)
            if answered is not None:
                return answered

    async def _call_back(self, call: CallSession) -> str:
        """The caller leaves the line and keeps their place (pressed 1, or the queue
        overflows to callbacks): they hear so, then the line closes."""
        assert self.on_callback is not None
        await self.on_callback(call)
        self.called_back.add(call.info.contact_id or "")
        return "callback"

    def _callbacks_allowed(self, call: CallSession) -> bool:
        contact = call.info.contact_id or ""
        live = self.routing.engine.contacts.get(contact)
        offered = self.holds.get(contact, Hold()).callback
        return bool(self.on_callback and live is not None and call.info.caller_number
                    and (offered if offered is not None
                         else self.routing.queue_settings(live.queue).callback))

    async def _on_event(self, call: CallSession, event: dict[str, Any],
                        rang: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
        """Handle one event while waiting; (agent id, phone channel) once one answered."""
        kind = event["type"]
        if kind == OFFER:
            offer: Offered = event["event"]
            leg = await self.ring(call, offer)
            if leg is not None:
                rang[offer.offer_id] = (offer.agent_id, leg)
        elif kind == OFFER_ENDED:
            ended: OfferEnded = event["event"]
            _, leg = rang.pop(ended.offer_id, ("", ""))
            self.legs.pop(leg, None)
            if leg:
                with contextlib.suppress(TelephonyError):
                    await self.ari.hangup(leg)
        elif kind == "StasisStart" and channel_of(event) != call.id:
            leg = str(channel_of(event))
            offer_id = next((o for o, (_, ch) in rang.items() if ch == leg), None)
            if offer_id is None:
                with contextlib.suppress(TelephonyError):
                    await self.ari.hangup(leg)
                return None
            agent_id, _ = rang.pop(offer_id)
            try:
                await self.routing.accept(agent_id, offer_id)
            except CtlError as e:  # the offer ended as the agent picked up
                log.info("agent answered a dead offer: %s", e)
                self.legs.pop(leg, None)
                with contextlib.suppress(TelephonyError):
                    await self.ari.hangup(leg)
                return None
            return agent_id, leg
        elif kind in ("ChannelDestroyed", "ChannelHangupRequest") and channel_of(event) != call.id:
            leg = str(channel_of(event))
            offer_id = next((o for o, (_, ch) in rang.items() if ch == leg), None)
            if offer_id is not None and event.get("cause") in (_CAUSE_BUSY, _CAUSE_REJECTED):
                agent_id, _ = rang.pop(offer_id)
                self.legs.pop(leg, None)
                with contextlib.suppress(CtlError):
                    await self.routing.decline(agent_id, offer_id)
            # No answer: the engine's own offer timeout decides, and counts the miss.
        return None

    async def ring(self, call: CallSession, offer: Offered, leg: str | None = None
                   ) -> str | None:
        """Ring the offer's agent for `call`: the phone's channel id, or None if it cannot
        ring (the offer is then declined)."""
        leg = leg or uuid.uuid4().hex
        self.legs[leg] = call
        # A little longer than the offer: the engine's timeout is the one that counts.
        ring_for = math.ceil(offer.expires_at - self.routing.now()) + 2
        try:
            endpoint = await self._endpoint(offer.agent_id)
            await self.ari.originate(
                f"PJSIP/{endpoint}", app_args=f"{LEG},{call.info.contact_id},{offer.offer_id}",
                channel_id=leg, caller_id=_caller_id(call), timeout=max(ring_for, 5),
                variables={"CTL_FLOW": LEG, **call_headers(call.info.contact_id, offer)})
        except CtlError as e:
            # Not registered, unknown...: the phone cannot ring, which is a decline.
            log.info("cannot ring agent %s: %s", offer.agent_id, e)
            self.legs.pop(leg, None)
            with contextlib.suppress(CtlError):
                await self.routing.decline(offer.agent_id, offer.offer_id)
            return None
        await call.log("call", {"action": "ringing_agent", "agent": offer.agent_id,
                                "offer": offer.offer_id})
        return leg

    async def talk(self, call: CallSession, answered: tuple[str, str] | None,
                   keep_caller: bool = False) -> str:
        """Caller and agent bridged and recorded, until either hangs up."""
        bridge = call.info.contact_id or uuid.uuid4().hex
        if answered is not None:
            _, leg = answered
            with contextlib.suppress(TelephonyError):
                await self.ari.stop_moh(call.id)
            await self.ari.create_bridge(bridge)
            await self.ari.add_to_bridge(bridge, call.id, leg)
            name = f"{bridge}-{int(time.time())}"  # one file per agent who took the call
            await self.ari.record_bridge(bridge, name)
            await call.log("call", {"action": "bridged", "agent": answered[0],
                                    "recording": f"{name}.wav"})
        else:
            leg = ""
        consult = Consultation(self.ari, self.routing, self.legs, self._endpoint, call, bridge)
        try:
            while True:
                event = await call.next_event()
                if event["type"] == CONSULT:
                    await consult.start(event["event"])
                    continue
                if event["type"] == CONSULT_ENDED:
                    leg = await consult.ended(event["event"], leg)
                    continue
                if consult.started is not None:
                    await consult.on_event(event, leg)
                    continue
                if event["type"] in ("ChannelHold", "ChannelUnhold") and \
                        channel_of(event) == leg:  # the agent's phone put the caller on hold
                    with contextlib.suppress(TelephonyError):
                        if event["type"] == "ChannelHold":
                            await self.ari.start_moh(call.id)
                        else:
                            await self.ari.stop_moh(call.id)
                    continue
                if event["type"] == TRANSFERRED:
                    await call.log("call", {"action": "transferred",
                                            "queue": event["event"].queue})
                    return TRANSFERRED  # the agent's phone is hung up on the way out
                if event["type"] in ("StasisEnd", "ChannelDestroyed") and \
                        channel_of(event) == leg:
                    if keep_caller:
                        await self._agent_left(call)
                    else:
                        await call.hangup()
                    return "completed"
        finally:
            self.legs.pop(leg, None)
            await consult.cleanup()
            with contextlib.suppress(TelephonyError):
                await self.ari.destroy_bridge(bridge)
            if leg:
                with contextlib.suppress(TelephonyError):
                    await self.ari.hangup(leg)

    async def _agent_left(self, call: CallSession) -> None:
        """The agent hung up and the caller's flow goes on (a survey...): the contact is
        done with routing now, not when the caller leaves."""
        contact = call.info.contact_id or ""
        live = self.routing.engine.contacts.get(contact)
        self.served.add(contact)
        if live is not None and live.state == "assigned" and live.agent is not None:
            await self.routing.complete(live.agent, contact)

    async def _announce(self, call: CallSession, music: str = "default") -> None:
        contact = call.info.contact_id or ""
        try:
            position, wait = self.routing.place_in_line(contact)
        except NotFound:
            return  # offered right now: no announcement
        media = ["sound:queue-youarenext"] if position == 1 else [
            "sound:queue-thereare", f"number:{position - 1}", "sound:queue-callswaiting"]
        if wait is not None and wait >= 60:
            media += ["sound:queue-holdtime", f"number:{round(wait / 60)}",
                      "sound:queue-minutes"]
        with contextlib.suppress(NoSuchChannel):
            await self.ari.stop_moh(call.id)
        await call.play(media)
        await call.log("announcement", {"position": position, "expected_wait": wait})
        await self.ari.start_moh(call.id, music)

    async def agent_id(self, username: str) -> str:
        async with self._db.session(readonly=True) as s:
            found = await s.scalar(select(Agent.id).where(Agent.username == username))
        if found is None:
            raise NotFound(f"no agent {username!r}")
        return found

    async def _endpoint(self, agent_id: str) -> str:
        """The phone to ring for the agent: the desk's browser softphone while it is
        registered, else the desk SIP phone. One phone per offer, not both: the agent at the
        desk answers where the desk shows the call, a forked ring would race two answers
        against one offer, and an agent who prefers the desk phone turns the browser phone
        off (it unregisters)."""
        if agent_id not in self._endpoints:
            async with self._db.session(readonly=True) as s:
                username = await s.scalar(select(Agent.username).where(Agent.id == agent_id))
            if username is None:
                raise NotFound(f"no agent {agent_id}")
            self._endpoints[agent_id] = username
        username = self._endpoints[agent_id]
        if await self.ari.endpoint_online("PJSIP", webrtc.endpoint(username)):
            return webrtc.endpoint(username)
        return endpoint_name(username)

    # --- when the call ends ---------------------------------------------------------

    async def finished(self, contact_id: str, reason: str) -> bool:
        """The call manager closes a call: if routing holds its contact, routing ends it
        (abandoned while waiting, wrap-up after an agent). True if routing took it."""
        if contact_id in self.called_back:
            return True  # it stays in its queue, without its caller, until called back
        if contact_id in self.served:
            self.served.discard(contact_id)
            return True  # completed when its agent left; routing closes it after wrap-up
        live = self.routing.engine.contacts.get(contact_id)
        if live is None:
            return False
        if live.state in ("queued", "offered"):
            await self.routing.end(contact_id, ContactState.ABANDONED, reason)
        elif live.state == "assigned" and live.agent is not None:
            await self.routing.complete(live.agent, contact_id)
        return True


def call_headers(contact_id: str | None, offer: Offered) -> dict[str, str]:
    """SIP headers of the INVITE that rings an agent: the desk's softphone tells the other
    panes which contact the call it answers is."""
    return {"PJSIP_HEADER(add,X-CTL-Contact)": contact_id or "",
            "PJSIP_HEADER(add,X-CTL-Offer)": offer.offer_id}


def _caller_id(call: CallSession) -> str:
    name, number = call.info.caller_name, call.info.caller_number
    return f'"{name}" <{number}>' if name else number
