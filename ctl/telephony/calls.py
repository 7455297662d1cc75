"""Calls in Stasis: route ARI events to sessions, open and close their contacts, resync."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Gauge

from ctl.contacts.service import ContactService
from ctl.contacts.states import FINAL, ContactState
from ctl.customers.identity import normalize_phone
from ctl.errors import NoSuchChannel, TelephonyError, TelephonyUnavailable
from ctl.store.live import LiveState
from ctl.telephony.ari import AriClient
from ctl.telephony.events import Event, channel_of
from ctl.telephony.session import RESYNC, CallInfo, CallSession, Hangup

log = logging.getLogger(__name__)

CALLS = Counter("ctl_calls_total", "calls that entered the controller", ["how"])
CALLS_ENDED = Counter("ctl_calls_ended_total", "calls that ended", ["reason"])
ACTIVE = Gauge("ctl_calls_active", "calls in the controller now")

Flow = Callable[[CallSession], Awaitable[None]]
# Told when a call ends, before its contact is closed; True: it took care of the contact
# (routing does, for a call that waited in a queue or reached an agent).
OnClose = Callable[[str, str], Awaitable[bool]]
LEG = "agent-leg"  # first Stasis argument of a phone the controller rang for a call
CUSTOMER_LEG = "callback-leg"  # ... of a customer it calls back
TRANSFER_LEG = "transfer-leg"  # ... of an outside number an IVR flow transfers to
SUPERVISOR_LEG = "supervisor-leg"  # ... of a supervisor listening in, and their snoop
# Channels the controller placed for a call carry one of these in CTL_FLOW (and as their
# first Stasis argument): never a call of their own, to adopt after a restart.
LEGS = (LEG, CUSTOMER_LEG, TRANSFER_LEG, SUPERVISOR_LEG)
# Events no flow reads: about half of a call's events (ChannelVarset alone is ~7 a SIP
# call: RTP statistics at hangup), each serialised by Asterisk and parsed by ctl.
UNREAD_EVENTS = ("ChannelVarset", "ChannelDialplan", "ChannelStateChange",
                 "ChannelCallerId", "ChannelConnectedLine")


class CallManager:
    """Owns every CallSession of this controller, keyed by channel id."""

    def __init__(self, ari: AriClient, contacts: ContactService,
                 live: LiveState, flows: dict[str, Flow], node: str, region: str) -> None:
        self.ari, self.contacts, self.live = ari, contacts, live
        self.flows = flows
        self.node, self.region = node, region
        self.sessions: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._recovery: asyncio.Task[None] | None = None
        self.legs: dict[str, CallSession] = {}  # channels placed for a call -> its session
        # Channels other services placed (supervisors' phones...) -> where their events go.
        self.watched: dict[str, asyncio.Queue[Event]] = {}
        self.on_close: OnClose | None = None
        # Flows not in `flows` (the published IVR flows); None: the name is unknown.
        self.resolve: Callable[[str], Flow | None] | None = None

    def dispatch(self, event: Event) -> None:
        """Called by the websocket reader: must not block."""
        channel_id = channel_of(event)
        if channel_id is None:
            return
        session = self.sessions.get(channel_id) or self.legs.get(channel_id)
        if session is not None:
            session.queue.put_nowait(event)
        elif (inbox := self.watched.get(channel_id)) is not None:
            inbox.put_nowait(event)
        elif event["type"] == "StasisStart" and event.get("application") == self.ari.app:
            args = [*event.get("args", []), "", ""]
            if args[0] in LEGS:  # answered after its call was gone
                task = asyncio.create_task(self._drop(channel_id))
                self._tasks[channel_id] = task
                return
            self._start(_info(event["channel"], args[0], args[1], adopted=False))

    async def _drop(self, channel_id: str) -> None:
        with contextlib.suppress(TelephonyError):
            await self.ari.hangup(channel_id)
        self._tasks.pop(channel_id, None)

    def _start(self, info: CallInfo) -> None:
        session = CallSession(self.ari, info, self.contacts)
        self.sessions[info.channel_id] = session
        task = asyncio.create_task(self._run(session), name=f"call-{info.channel_id}")
        self._tasks[info.channel_id] = task
        CALLS.labels("adopted" if info.adopted else "new").inc()
        ACTIVE.set(len(self.sessions))

    async def _run(self, call: CallSession) -> None:
        final, reason, data = ContactState.CLOSED, "completed", {}
        try:
            await self._open(call)
            flow = self.flows.get(call.info.flow) or \
                (self.resolve(call.info.flow) if self.resolve else None) or self.flows["demo"]
            await flow(call)
            await call.hangup()
        except Hangup as h:
            reason, data = h.reason, {"cause": h.cause}
        except NoSuchChannel:
            reason = "caller_hangup"
        except asyncio.CancelledError:
            # Controller shutting down: the call stays in Stasis and the next controller
            # adopts it, so its contact must stay open (its held log lines are written).
            with contextlib.suppress(Exception):
                await call.flush_logs()
            raise
        except TelephonyUnavailable as e:
            # ARI is unreachable but the call may be alive in Asterisk: keep the contact
            # open; a resync, once ARI answers again, adopts the channel or sweeps it.
            log.warning("ARI unreachable mid-call: %s", e, extra={"ctx": {"channel": call.id}})
            self._recover()
            with contextlib.suppress(Exception):
                await call.flush_logs(stop_holding=True)
            return
        except Exception as e:
            log.exception("call failed", extra={"ctx": {"channel": call.id}})
            final, reason = ContactState.CLOSED, "error"
            with contextlib.suppress(Exception):  # the contact's history says it failed
                await call.log("call", {"action": "failed", "error": str(e)[:500]})
            with contextlib.suppress(TelephonyError):
                await call.hangup()
        finally:
            self.sessions.pop(call.id, None)
            self._tasks.pop(call.id, None)
            ACTIVE.set(len(self.sessions))
        try:
            await self._close(call, final, reason, data)
        except Exception:
            # The sweep of the next resync closes it.
            log.exception("closing the contact failed", extra={"ctx": {"channel": call.id}})

    def _recover(self) -> None:
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._resync_until_done())

    async def _resync_until_done(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self.resync()
                return
            except TelephonyUnavailable:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _open(self, call: CallSession) -> None:
        """Open the call's contact in one transaction (customer identified, contact created
        and moved to the IVR) and hold its log lines until it changes state again; an
        adopted call takes its contact back."""
        info = call.info
        # Only an adopted call can have a contact already: a channel enters Stasis once,
        # and a StasisStart this controller missed makes resync adopt the channel.
        existing = await self.contacts.by_external_ref("voice", info.channel_id) \
            if info.adopted else None
        if existing is not None and existing.state not in FINAL:
            info.contact_id = existing.id
            await call.log("call", {"action": "adopted", "node": self.node})
        else:
            phone = normalize_phone(info.caller_number, self.region)
            contact = await self.contacts.open(
                "voice", identity=("phone", phone) if phone else None,
                external_ref=info.channel_id, node=self.node,
                attributes={"flow": info.flow, "did": info.did,
                            "caller": phone or info.caller_number,
                            "caller_name": info.caller_name},
                then=(ContactState.IVR, "flow_started", {"flow": info.flow}),
            )
            info.contact_id = contact.id
            call.hold_logs()  # this session moves the contact's state from here on
        await self.live.put_call(info.channel_id, info.contact_id, self.node)

    async def _close(self, call: CallSession, final: ContactState, reason: str,
                     data: dict[str, Any]) -> None:
        CALLS_ENDED.labels(reason).inc()
        await self.live.drop_call(call.id)
        contact = call.info.contact_id
        if contact is None:
            return
        if self.on_close is not None and await self.on_close(contact, reason):
            await call.flush_logs()  # nothing, normally: routing's flows do not hold lines
            return
        await self.contacts.finish(contact, final, reason, data, logged=call.take_logs())

    async def resync(self) -> None:
        """After every (re)connect: adopt calls in Stasis we do not know, end the rest."""
        await self.ari.ignore_events(*UNREAD_EVENTS)  # a restarted Asterisk forgot it
        app = await self.ari.application()
        in_app = set(app.get("channel_ids", []))
        for channel_id in in_app - set(self.sessions) - set(self.legs) - set(self.watched):
            try:
                channel = await self.ari.channel(channel_id)
                flow = await self.ari.get_var(channel_id, "CTL_FLOW")
                if flow in LEGS:  # placed by a controller that is gone: its call is over
                    with contextlib.suppress(TelephonyError):
                        await self.ari.hangup(channel_id)
                    continue
                # Read only now: a placed leg has no CTL_DID, and a variable ARI does not
                # find is a 404, which would skip the leg instead of hanging it up.
                did = await self.ari.get_var(channel_id, "CTL_DID")
            except NoSuchChannel:
                continue
            if channel_id not in self.sessions and channel_id not in self.legs:
                log.info("adopting call", extra={"ctx": {"channel": channel_id}})
                self._start(_info(channel, flow, did, adopted=True))
        for channel_id, session in list(self.sessions.items()):
            if channel_id in in_app:
                session.queue.put_nowait({"type": RESYNC})
            else:  # it left Stasis while we were not listening
                session.queue.put_nowait({"type": "StasisEnd", "synthetic": True})
        await self.sweep()

    async def sweep(self) -> None:
        """Close contacts whose channel no longer exists anywhere in Asterisk."""
        alive = {c["id"] for c in await self.ari.channels()}
        for contact in await self.contacts.unfinished("voice"):
            ref = contact.external_ref
            if ref and ref not in alive and ref not in self.sessions:
                # Routing ends its own contacts (an abandon, a wrap-up) and keeps the ones
                # waiting without a call (callbacks).
                reason = "ended_while_controller_away"
                if self.on_close is None or not await self.on_close(contact.id, reason):
                    await self.contacts.finish(contact.id, ContactState.CLOSED, reason, {})
                await self.live.drop_call(ref)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        if self._recovery is not None:
            tasks.append(self._recovery)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, TelephonyError):
                await t


def _info(channel: dict[str, Any], flow: str, did: str, adopted: bool) -> CallInfo:
    caller = channel.get("caller", {})
    return CallInfo(
        channel_id=channel["id"], flow=flow or "demo", did=did,
        caller_number=caller.get("number", ""), caller_name=caller.get("name", ""),
        state=channel.get("state", ""), adopted=adopted,
    )
