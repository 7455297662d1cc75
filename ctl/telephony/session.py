"""One call in Stasis: its event queue and the verbs a flow uses (answer, play, hangup)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ctl.contacts.service import ContactService, Logged, logged
from ctl.errors import NoSuchChannel
from ctl.telephony.ari import AriClient
from ctl.telephony.events import Event, channel_of

log = logging.getLogger(__name__)


# Put on every live session's queue after an ARI reconnect: events may have been lost, so
# whatever the session waits for must be re-checked over REST.
RESYNC = "CtlResync"
# Held-back log lines are written anyway once this many wait, or the oldest is this old.
HOLD_MAX_LINES, HOLD_MAX_SECONDS = 20, 5.0


class Hangup(Exception):
    """The caller's channel left Stasis; the flow stops wherever it is."""

    def __init__(self, reason: str, cause: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


@dataclass
class CallInfo:
    channel_id: str
    flow: str
    did: str
    caller_number: str
    caller_name: str
    state: str
    adopted: bool
    contact_id: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)


class CallSession:
    """Verbs for one call. Events for the channel arrive on `queue` from the dispatcher."""

    def __init__(self, ari: AriClient, info: CallInfo, contacts: ContactService) -> None:
        self.ari = ari
        self.info = info
        self.contacts = contacts
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self._gone: Hangup | None = None
        self._stash: list[Event] = []
        self._held: list[Logged] | None = None  # None: log() writes at once
        self._held_since = 0.0

    @property
    def id(self) -> str:
        return self.info.channel_id

    async def next_event(self, timeout: float | None = None) -> Event:
        """The next event of this call (its caller's channel, or a leg it placed, such as an
        agent's phone). Raises Hangup once the caller is gone, TimeoutError after `timeout`."""
        if self._gone is not None:
            raise self._gone
        if self._stash:
            return self._stash.pop(0)
        event = await asyncio.wait_for(self.queue.get(), timeout)
        kind = event["type"]
        ours = channel_of(event) in (self.id, None)
        if ours and kind in ("ChannelHangupRequest", "StasisEnd", "ChannelDestroyed"):
            self._gone = Hangup("caller_hangup", event.get("cause"))
        if self._gone is not None:
            raise self._gone
        return event

    def stash(self, event: Event) -> None:
        """Keep an event a verb is not waiting for, for the next next_event()."""
        self._stash.append(event)

    async def answer(self) -> None:
        if self.info.state != "Up":
            await self.ari.answer(self.id)
            self.info.state = "Up"
            await self.log("call", {"action": "answered"})

    async def play(self, media: str | list[str]) -> str:
        """Play and wait for the end; returns the playback's final state ("done", ...)."""
        playback_id = uuid.uuid4().hex
        started = time.monotonic()
        await self.ari.play(self.id, media, playback_id)
        held: list[Event] = []
        while True:
            event = await self.next_event()
            if event["type"] == "PlaybackFinished" and event["playback"]["id"] == playback_id:
                state = str(event["playback"].get("state", "done"))
            elif event["type"] == RESYNC and not await self.ari.playback_exists(playback_id):
                # Its PlaybackFinished went out while our websocket was down.
                state = "done_unobserved"
            else:
                if event["type"] != RESYNC and not event["type"].startswith("Playback"):
                    held.append(event)  # e.g. an offer that arrived during an announcement
                continue
            self._stash.extend(held)
            await self.log("prompt", {"media": media, "state": state,
                                      "ms": round((time.monotonic() - started) * 1000)})
            return state

    async def hangup(self, reason: str = "normal") -> None:
        with contextlib.suppress(NoSuchChannel):
            await self.ari.hangup(self.id, reason)


    async def log(self, kind: str, data: dict[str, Any]) -> None:
        """Record an interaction event of the call's contact: at once, or held back while
        the session owns the contact (see hold_logs)."""
        if self.info.contact_id is None:
            return
        if self._held is None:
            await self.contacts.log(self.info.contact_id, kind, data)
            return
        if not self._held:
            self._held_since = time.monotonic()
        self._held.append(logged(kind, data))
        if len(self._held) >= HOLD_MAX_LINES or \
                time.monotonic() - self._held_since >= HOLD_MAX_SECONDS:
            await self.flush_logs()

    def hold_logs(self) -> None:
        """From now on log() keeps lines in memory; they are written with the contact's
        next state change (take_logs), by flush_logs, or once too many or too old. A crash
        loses the held lines, never a state change: only the session that moves the
        contact's state may hold its lines."""
        if self._held is None:
            self._held = []

    def take_logs(self) -> list[Logged]:
        """The held lines, for the caller's transaction; holding goes on."""
        held, self._held = self._held or [], [] if self._held is not None else None
        return held

    async def flush_logs(self, *, stop_holding: bool = False) -> None:
        """Write the held lines now (one transaction); `stop_holding`: log() writes at
        once from now on, e.g. when routing takes over the contact's state."""
        held = self.take_logs()
        if stop_holding:
            self._held = None
        if held and self.info.contact_id is not None:
            await self.contacts.log_many(self.info.contact_id, held)
