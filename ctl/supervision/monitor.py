"""Listening in on a live call (ARI snoop): the supervisor's phone is rung and, once
answered, bridged with a snoop channel on the agent's leg.

- listen: the snoop hears both directions; the supervisor's phone is muted towards it;
- whisper: the same, unmuted: the snoop speaks into what the agent hears (whisper=out),
  so the agent hears the supervisor and the customer does not;
- barge: the supervisor's phone joins the call's own bridge: everybody hears everybody.

Switching mode moves or (un)mutes the one phone channel; the snoop stays until the end,
and its disappearance (the agent's leg gone) is what ends the session with the call.
Both channels carry CTL_FLOW=supervisor-leg: a controller restart hangs them up.
Every start, switch and end is a contact event (who listened to which call, when).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ctl.contacts.service import ContactService
from ctl.errors import BadRequest, Conflict, CtlError, InvalidTransition, NotFound
from ctl.routing.notifier import Message
from ctl.routing.service import RoutingService
from ctl.telephony.ari import AriClient
from ctl.telephony.calls import SUPERVISOR_LEG, CallManager
from ctl.telephony.events import Event, channel_of
from ctl.telephony.queueing import VoiceQueues

log = logging.getLogger(__name__)

MODES = ("listen", "whisper", "barge")
_STOP = "CtlMonitorStop"
_RING_SECONDS = 30


@dataclass
class Session:
    id: str
    contact_id: str
    supervisor_id: str
    agent_id: str
    agent_leg: str
    mode: str
    state: str = "ringing"  # then active
    started_at: float | None = None
    inbox: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None

    @property
    def phone(self) -> str:
        return f"sup-{self.id}"

    @property
    def snoop(self) -> str:
        return f"snoop-{self.id}"

    @property
    def bridge(self) -> str:
        return f"monitor-{self.id}"

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "contact_id": self.contact_id, "supervisor_id":
                self.supervisor_id, "agent_id": self.agent_id, "mode": self.mode,
                "state": self.state, "started_at": self.started_at, "channel": self.phone}


class Monitors:
    def __init__(self, ari: AriClient, calls: CallManager, voice: VoiceQueues,
                 routing: RoutingService, contacts: ContactService,
                 publish: Callable[[str, Message], None],
                 endpoint: Callable[[str], Awaitable[str]]) -> None:
        self.ari, self.calls, self.voice, self.routing = ari, calls, voice, routing
        self.contacts, self.publish, self._endpoint = contacts, publish, endpoint
        self.by_supervisor: dict[str, Session] = {}

    def listed(self) -> list[dict[str, Any]]:
        return [s.view() for s in self.by_supervisor.values()]

    async def start(self, supervisor_id: str, contact_id: str, mode: str) -> dict[str, Any]:
        """Start listening in on the call of `contact_id`, or switch the running session's
        mode. One session per supervisor (one phone)."""
        if mode not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        running = self.by_supervisor.get(supervisor_id)
        if running is not None:
            if running.contact_id != contact_id:
                raise Conflict(f"you are monitoring contact {running.contact_id}",
                               hint="stop that first (DELETE its monitor)")
            await self._switch(running, mode)
            return running.view()
        live = self.routing.engine.contacts.get(contact_id)
        call = self.voice.waiting.get(contact_id)
        if live is None or live.state != "assigned" or live.agent is None or call is None:
            raise InvalidTransition(f"contact {contact_id} is not a call with an agent now")
        session = Session(uuid.uuid4().hex[:16], contact_id, supervisor_id, live.agent,
                          await self._agent_leg(contact_id, call.id), mode)
        for channel in (session.phone, session.snoop):
            self.calls.watched[channel] = session.inbox
        self.by_supervisor[supervisor_id] = session
        try:
            await self.ari.originate(
                f"PJSIP/{await self._endpoint(supervisor_id)}",
                app_args=f"{SUPERVISOR_LEG},{contact_id},{session.id}", channel_id=session.phone,
                caller_id=f'"monitor {mode}" <{call.info.caller_number}>',
                timeout=_RING_SECONDS, variables={"CTL_FLOW": SUPERVISOR_LEG})
        except CtlError:
            self._forget(session)
            raise
        session.task = asyncio.create_task(self._run(session), name=f"monitor-{session.id}")
        self._tell(session)
        return session.view()

    async def stop(self, supervisor_id: str, contact_id: str) -> None:
        session = self.by_supervisor.get(supervisor_id)
        if session is None or session.contact_id != contact_id:
            raise NotFound(f"you are not monitoring contact {contact_id}")
        session.inbox.put_nowait({"type": _STOP})
        if session.task is not None:
            await asyncio.shield(session.task)

    async def close(self) -> None:
        """The controller stops leading: every session ends (its channels are hung up)."""
        tasks = [s.task for s in self.by_supervisor.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- one session --------------------------------------------------------------

    async def _agent_leg(self, contact_id: str, caller: str) -> str:
        """The agent's channel: the call's bridge holds the caller, the agent and maybe
        supervisors who barged in."""
        try:
            bridge = await self.ari.bridge(contact_id)
        except NotFound:
            raise InvalidTransition(f"contact {contact_id} is not connected yet") from None
        legs = [c for c in bridge.get("channels", [])
                if c != caller and c not in self.calls.watched]
        if not legs:  # answered, and being put through this very moment
            raise InvalidTransition(f"contact {contact_id} is not connected yet")
        if len(legs) != 1:
            raise InvalidTransition(f"contact {contact_id} is in a consultation",
                                    hint="listen in once the transfer is over")
        return str(legs[0])

    async def _run(self, session: Session) -> None:
        reason = "error"
        try:
            if not await self._until(session, session.phone):
                reason = "not_answered"
                return
            await self.ari.snoop(session.agent_leg, session.snoop, spy="both", whisper="out",
                                 app_args=f"{SUPERVISOR_LEG},{session.contact_id},{session.id}")
            if not await self._until(session, session.snoop):
                reason = "call_ended"
                return
            # Only now: the snoop enters Stasis from a thread of its own, and ARI refuses
            # (409) to touch a channel before it is in the application.
            await self.ari.set_var(session.snoop, "CTL_FLOW", SUPERVISOR_LEG)
            await self.ari.create_bridge(session.bridge)
            async with session.lock:
                await self.ari.add_to_bridge(session.bridge, session.snoop)
                await self._apply(session, None, session.mode)
                session.state, session.started_at = "active", self.routing.now()
            await self._log(session, "started")
            self._tell(session)
            reason = await self._watch(session)
        except CtlError as e:
            log.warning("monitoring %s failed: %s", session.contact_id, e)
        finally:
            await self._end(session, reason)

    async def _until(self, session: Session, channel: str) -> bool:
        """True once `channel` entered Stasis; False if it went, or a stop came first."""
        while True:
            event = await session.inbox.get()
            if event["type"] == _STOP:
                return False
            if channel_of(event) == channel:
                if event["type"] == "StasisStart":
                    return True
                if event["type"] in ("StasisEnd", "ChannelDestroyed"):
                    return False

    async def _watch(self, session: Session) -> str:
        while True:
            event = await session.inbox.get()
            if event["type"] == _STOP:
                return "stopped"
            if event["type"] in ("StasisEnd", "ChannelDestroyed"):
                return "supervisor_hung_up" if channel_of(event) == session.phone \
                    else "call_ended"

    async def _switch(self, session: Session, mode: str) -> None:
        async with session.lock:
            if mode == session.mode:
                return
            before, session.mode = session.mode, mode
            if session.state == "active":
                await self._apply(session, before, mode)
        if session.state == "active":
            await self._log(session, "mode")
        self._tell(session)

    async def _apply(self, session: Session, before: str | None, mode: str) -> None:
        """Put the supervisor's phone where `mode` wants it (`before`: where it is)."""
        phone = session.phone
        if (before == "barge") != (mode == "barge") or before is None:
            if before is not None:
                await self.ari.remove_from_bridge(
                    session.contact_id if before == "barge" else session.bridge, phone)
            await self.ari.add_to_bridge(
                session.contact_id if mode == "barge" else session.bridge, phone)
        if mode == "listen":
            await self.ari.mute(phone)
        elif before == "listen":
            await self.ari.unmute(phone)

    async def _end(self, session: Session, reason: str) -> None:
        with contextlib.suppress(CtlError):
            await self.ari.destroy_bridge(session.bridge)
        for channel in (session.phone, session.snoop):
            with contextlib.suppress(CtlError):
                await self.ari.hangup(channel)
        self._forget(session)
        if session.started_at is not None:
            await self._log(session, "ended", reason=reason,
                            seconds=round(self.routing.now() - session.started_at, 1))
        session.state = "ended"
        self._tell(session, reason)

    def _forget(self, session: Session) -> None:
        for channel in (session.phone, session.snoop):
            self.calls.watched.pop(channel, None)
        if self.by_supervisor.get(session.supervisor_id) is session:
            del self.by_supervisor[session.supervisor_id]

    async def _log(self, session: Session, action: str, **more: Any) -> None:
        try:
            await self.contacts.log(session.contact_id, "monitor", {
                "action": action, "supervisor": session.supervisor_id,
                "agent": session.agent_id, "mode": session.mode, **more})
        except Exception:  # the call goes on; the log says what the history lacks
            log.exception("monitor event %s of contact %s not recorded", action,
                          session.contact_id)

    def _tell(self, session: Session, reason: str | None = None) -> None:
        message = {"type": "monitor", "monitor": session.view(), "reason": reason}
        self.publish("supervisor", message)
