"""Callbacks: a caller leaves the line and keeps their place; when their turn comes an
agent is reserved first (their phone rings and is answered), then the customer is dialled
and both are bridged and recorded.

A callback never fires twice: each attempt is counted in the database before the customer
is dialled, and only the engine's offer (one at a time, persisted) starts one. A failed
attempt (busy, no answer) puts the contact back in its place, held for
`callback_retry_after` seconds; after `callback_retries` retries it ends `callback_failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from sqlalchemy import select

from ctl.contacts.service import event_row
from ctl.contacts.states import ContactState
from ctl.errors import CtlError, TelephonyError
from ctl.routing.model import Event, Offered, OfferEnded
from ctl.settings import Settings
from ctl.store.db import Database
from ctl.store.models import Contact, ContactEvent
from ctl.telephony.calls import CUSTOMER_LEG, CallManager
from ctl.telephony.events import channel_of
from ctl.telephony.queueing import OFFER_ENDED, VoiceQueues
from ctl.telephony.session import CallInfo, CallSession, Hangup

log = logging.getLogger(__name__)


class Callbacks:
    def __init__(self, voice: VoiceQueues, calls: CallManager, db: Database,
                 settings: Settings) -> None:
        self.voice, self.calls, self._db = voice, calls, db
        self.ari, self.routing = voice.ari, voice.routing
        self.settings = settings.routing
        first_trunk = settings.trunks[0].name if settings.trunks else None
        self.dial = self.settings.callback_dial or (
            f"PJSIP/{{number}}@{first_trunk}" if first_trunk else "Local/{number}@public")
        self.pending: dict[str, str] = {}  # contact id -> number to call back
        self._running: dict[str, CallSession] = {}  # contact id -> the attempt under way
        voice.on_callback = self.opt_in
        self.routing.listeners.append(self.on_routing)

    async def restore(self) -> None:
        """Callbacks still waiting after a restart (their contacts are queued), and those a
        crash interrupted: an agent reserved, the customer perhaps being dialled. Those go
        back to their place in the queue, not to the agent: nobody is on the line."""
        interrupted = []
        async with self._db.session(readonly=True) as s:
            rows = await s.scalars(select(Contact).where(
                Contact.channel == "voice", Contact.state.in_(("queued", "assigned"))))
            for row in rows:
                callback = row.attributes.get("callback")
                if not callback:
                    continue
                if row.state == "assigned":
                    last = await s.scalar(
                        select(ContactEvent.data).where(ContactEvent.contact_id == row.id,
                                                        ContactEvent.kind == "callback")
                        .order_by(ContactEvent.id.desc()).limit(1))
                    if (last or {}).get("action") == "answered":
                        continue  # the conversation happened: it ends as any call does
                    interrupted.append((row.id, row.agent_id, callback))
                self.pending[row.id] = str(callback["number"])
                self.voice.called_back.add(row.id)
        for contact, agent, callback in interrupted:
            await self._requeue_interrupted(contact, agent, callback)

    async def _requeue_interrupted(self, contact: str, agent: str | None,
                                   callback: dict[str, Any]) -> None:
        for leg in callback.get("legs") or ():  # the agent's phone, the customer's line
            with contextlib.suppress(TelephonyError):
                await self.ari.hangup(leg)
        async with self._db.session() as s, s.begin():
            s.add(event_row(contact, "callback", {"action": "interrupted",
                                                  "attempt": callback.get("attempts", 0)}))
        if agent is not None and contact in self.routing.engine.contacts:
            await self.routing.transfer(agent, contact)  # its queue, keeping its age

    async def opt_in(self, call: CallSession) -> None:
        """The caller pressed 1 while waiting: keep their place, let them go."""
        contact = call.info.contact_id
        number = call.info.caller_number
        if contact is None or not number:
            return
        async with self._db.session() as s, s.begin():
            row = await s.get(Contact, contact)
            if row is None:
                return
            row.attributes = {**row.attributes, "callback": {"number": number, "attempts": 0}}
            s.add(event_row(contact, "callback", {"action": "requested"}))
        self.pending[contact] = number
        with contextlib.suppress(TelephonyError):
            await self.ari.stop_moh(call.id)
        await call.play("sound:queue-thankyou")

    async def on_routing(self, events: list[Event]) -> None:
        for e in events:
            if isinstance(e, Offered) and e.contact_id in self.pending \
                    and e.contact_id not in self.voice.waiting:
                task = asyncio.create_task(self._attempt(e))
                task.add_done_callback(_log_failure)
            elif isinstance(e, OfferEnded) and e.contact_id in self._running:
                self._running[e.contact_id].queue.put_nowait({"type": OFFER_ENDED, "event": e})

    async def _attempt(self, offer: Offered) -> None:
        contact, number = offer.contact_id, self.pending[offer.contact_id]
        customer_leg, agent_leg = uuid.uuid4().hex, uuid.uuid4().hex
        session = CallSession(self.ari, CallInfo(
            channel_id=customer_leg, flow="callback", did="", caller_number=number,
            caller_name="", state="", adopted=False, contact_id=contact), self.voice.contacts)
        self._running[contact] = session
        self.calls.legs[agent_leg] = self.calls.legs[customer_leg] = session
        try:
            rang = await self._ring_agent(session, offer, agent_leg)
            if rang:
                await self._call_customer(session, offer, agent_leg)
        finally:
            self._running.pop(contact, None)
            for leg in (agent_leg, customer_leg):
                self.calls.legs.pop(leg, None)
                with contextlib.suppress(TelephonyError):
                    await self.ari.hangup(leg)

    async def _ring_agent(self, session: CallSession, offer: Offered, leg: str) -> bool:
        """Reserve the agent: True once their phone is answered and the offer accepted."""
        if await self.voice.ring(session, offer, leg) is None:
            return False  # it could not ring: declined, the engine offers it again
        while True:
            event = await session.queue.get()
            if event["type"] == OFFER_ENDED:
                return False  # timed out or withdrawn: the engine offers it again
            if channel_of(event) == leg and event["type"] == "StasisStart":
                try:
                    await self.routing.accept(offer.agent_id, offer.offer_id)
                except CtlError:
                    return False
                return True
            if channel_of(event) == leg and event["type"] == "ChannelDestroyed":
                with contextlib.suppress(CtlError):
                    await self.routing.decline(offer.agent_id, offer.offer_id)
                return False

    async def _call_customer(self, session: CallSession, offer: Offered, agent_leg: str
                             ) -> None:
        contact, number = offer.contact_id, self.pending[offer.contact_id]
        attempt = await self._count_attempt(contact, [agent_leg, session.id])
        with contextlib.suppress(TelephonyError):
            await self.ari.ring(agent_leg)  # the agent hears ringing while we dial
        try:
            await self.ari.originate(self.dial.format(number=number),
                                     app_args=f"{CUSTOMER_LEG},{contact}",
                                     channel_id=session.id,
                                     variables={"CTL_FLOW": CUSTOMER_LEG},
                                     timeout=round(self.settings.callback_ring))
            while True:
                event = await session.next_event()
                if channel_of(event) == session.id and event["type"] == "StasisStart":
                    break
                if channel_of(event) == agent_leg and event["type"] == "ChannelDestroyed":
                    raise Hangup("agent_hangup")
        except (Hangup, TelephonyError) as e:
            await session.log("callback", {"action": "failed", "attempt": attempt,
                                           "reason": str(e)})
            await self._failed(offer.agent_id, contact, attempt)
            return
        await session.log("callback", {"action": "answered", "attempt": attempt})
        session.info.state = "Up"
        with contextlib.suppress(Hangup):
            await self.voice.talk(session, (offer.agent_id, agent_leg))
        self._forget(contact)
        with contextlib.suppress(CtlError):
            await self.routing.complete(offer.agent_id, contact)

    def _forget(self, contact_id: str) -> None:
        self.pending.pop(contact_id, None)
        self.voice.called_back.discard(contact_id)

    async def _count_attempt(self, contact_id: str, legs: list[str]) -> int:
        """Persisted before dialling: a crash never makes the same attempt twice, and the
        next controller knows which channels to hang up (`legs`)."""
        async with self._db.session() as s, s.begin():
            row = await s.get(Contact, contact_id)
            assert row is not None
            callback = dict(row.attributes.get("callback") or {})
            callback["attempts"] = int(callback.get("attempts", 0)) + 1
            callback["last_attempt"] = time.time()
            callback["legs"] = legs
            row.attributes = {**row.attributes, "callback": callback}
            s.add(event_row(contact_id, "callback", {"action": "dialling",
                                                     "attempt": callback["attempts"]}))
            return int(callback["attempts"])

    async def _failed(self, agent_id: str, contact_id: str, attempt: int) -> None:
        if attempt > self.settings.callback_retries:
            self._forget(contact_id)
            await self.routing.end(contact_id, ContactState.CLOSED, "callback_failed")
        else:  # back to its place, held until the retry is due
            await self.routing.transfer(agent_id, contact_id,
                                        hold=self.settings.callback_retry_after)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("callback attempt failed", exc_info=task.exception())
