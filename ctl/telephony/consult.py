"""Warm transfer on a call: the customer holds with music while their agent talks to
another agent's phone in the same bridge; then the second agent keeps the customer, or
the customer comes back to the first.

The routing engine decides (`Consulting`, `ConsultEnded`); this only moves the channels.
Hanging up is a choice too: the first agent hanging up hands the customer over, the
second agent hanging up (or not answering) takes the customer back.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

from ctl.errors import CtlError, TelephonyError
from ctl.routing.model import ConsultEnded, Consulting
from ctl.routing.service import RoutingService
from ctl.telephony.ari import AriClient
from ctl.telephony.calls import LEG
from ctl.telephony.events import Event, channel_of
from ctl.telephony.session import CallSession

log = logging.getLogger(__name__)
CONSULT, CONSULT_ENDED = "CtlConsult", "CtlConsultEnded"


class Consultation:
    """At most one per call, created by the call's talk loop."""

    def __init__(self, ari: AriClient, routing: RoutingService, legs: dict[str, CallSession],
                 endpoint: Callable[[str], Awaitable[str]], call: CallSession, bridge: str
                 ) -> None:
        self.ari, self.routing, self.legs, self._endpoint = ari, routing, legs, endpoint
        self.call, self.bridge = call, bridge
        self.leg: str | None = None  # the consulted agent's phone
        self.started: Consulting | None = None

    async def start(self, started: Consulting) -> None:
        """Customer to hold, the other agent's phone rung."""
        self.started = started
        call = self.call
        with contextlib.suppress(TelephonyError):
            await self.ari.remove_from_bridge(self.bridge, call.id)
            await self.ari.start_moh(call.id)
        self.leg = uuid.uuid4().hex
        self.legs[self.leg] = call
        try:
            await self.ari.originate(
                f"PJSIP/{await self._endpoint(started.to_agent)}",
                app_args=f"{LEG},{call.info.contact_id},consult", channel_id=self.leg,
                caller_id=call.info.caller_number, timeout=30, variables={"CTL_FLOW": LEG})
        except CtlError as e:
            log.info("cannot ring the consulted agent: %s", e)
            await self._end(hand_over=False)
        await call.log("call", {"action": "consulting", "agent": started.to_agent})

    async def on_event(self, event: Event, agent_leg: str) -> None:
        """A channel event during the consultation (`agent_leg`: the first agent's)."""
        kind, channel = event["type"], channel_of(event)
        if kind == "StasisStart" and channel == self.leg:
            await self.ari.add_to_bridge(self.bridge, str(channel))  # the two agents talk
        elif kind in ("StasisEnd", "ChannelDestroyed") and channel == self.leg:
            self.leg = None
            await self._end(hand_over=False)  # they hung up or never answered
        elif kind in ("StasisEnd", "ChannelDestroyed") and channel == agent_leg:
            await self._end(hand_over=True)  # the first agent hung up: a transfer

    async def ended(self, ended: ConsultEnded, agent_leg: str) -> str:
        """The customer back in the bridge with whoever keeps them; that agent's leg."""
        keep, drop = (self.leg, agent_leg) if ended.handed_over else (agent_leg, self.leg)
        if drop:
            self.legs.pop(drop, None)
            with contextlib.suppress(TelephonyError):
                await self.ari.hangup(drop)
        with contextlib.suppress(TelephonyError):
            await self.ari.stop_moh(self.call.id)
            await self.ari.add_to_bridge(self.bridge, self.call.id)
        await self.call.log("call", {"action": "consult_ended",
                                     "handed_over": ended.handed_over})
        self.started = None
        return keep or agent_leg

    async def _end(self, hand_over: bool) -> None:
        started = self.started
        if started is None:
            return
        with contextlib.suppress(CtlError):  # it may be ending already
            await self.routing.end_consult(started.agent_id, started.contact_id, hand_over)

    async def cleanup(self) -> None:
        if self.leg:
            self.legs.pop(self.leg, None)
            with contextlib.suppress(TelephonyError):
                await self.ari.hangup(self.leg)
