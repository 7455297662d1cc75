"""A prompt played while it is being made: its parts (media URIs, some still being
synthesized) become ARI playbacks on the channel, each started as soon as its file exists.
Asterisk queues a channel's playbacks and plays them one after another, so a part made
while the one before it plays follows without a gap, and the caller hears the first words
while the rest is synthesized."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Sequence

from ctl.errors import CtlError, NotFound, TelephonyError
from ctl.telephony.events import Event
from ctl.telephony.session import RESYNC, CallSession

log = logging.getLogger(__name__)

Part = str | Awaitable[str]
FED = "CtlPromptFed"  # put on the call's queue: the last part was given up, none plays


class Prompt:
    def __init__(self, call: CallSession, parts: Sequence[Part]) -> None:
        self.call, self.tag = call, uuid.uuid4().hex
        self.media: list[str] = []  # what was played, for the call's log
        self.playing: list[str] = []  # playback ids not finished yet
        self.stopped = False
        self._parts = list(parts)
        self._feeder: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Play the first part as soon as it is ready, with whatever is ready after it (one
        playback of a list); queue the rest as it comes. A first part that cannot be made
        raises here, as a prompt that cannot be played at all."""
        if not self._parts:
            return
        first = self._parts[0]
        ready = [first if isinstance(first, str) else await first]
        while len(ready) < len(self._parts) and isinstance(self._parts[len(ready)], str):
            ready.append(str(self._parts[len(ready)]))
        await self._play(ready)
        if len(ready) < len(self._parts):
            self._feeder = asyncio.create_task(self._feed(self._parts[len(ready):]))

    @property
    def done(self) -> bool:
        return not self.playing and (self._feeder is None or self._feeder.done())

    async def finished(self, event: Event) -> bool:
        """Whether, after `event`, the whole prompt has played (or was stopped)."""
        kind = event["type"]
        if kind == "PlaybackFinished" and event["playback"]["id"] in self.playing:
            self.playing.remove(event["playback"]["id"])
        elif kind == RESYNC:  # PlaybackFinished may have gone out while we were away
            self.playing = [p for p in self.playing
                            if await self.call.ari.playback_exists(p)]
        elif not (kind == FED and event.get("prompt") == self.tag):
            return False
        return self.done

    def ours(self, event: Event) -> bool:
        """Whether `event` is about this prompt (so no one else should keep it)."""
        return event["type"].startswith("Playback") or \
            (event["type"] == FED and event.get("prompt") == self.tag)

    async def stop(self) -> None:
        """Barge-in: nothing more of it is heard (the parts being made are still cached)."""
        self.stopped = True
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder
        for playback in reversed(self.playing):  # the queued first: none starts meanwhile
            with contextlib.suppress(NotFound, TelephonyError):
                await self.call.ari.stop_playback(playback)

    async def _feed(self, parts: Sequence[Part]) -> None:
        try:
            for part in parts:
                await self._play([part if isinstance(part, str) else await part])
        except CtlError as e:  # the first words were heard; the rest cannot be had
            log.warning("prompt on %s cut short: %s", self.call.id, e)
        finally:
            if not self.playing and not self.stopped:  # no PlaybackFinished will tell
                self.call.queue.put_nowait({"type": FED, "prompt": self.tag})

    async def _play(self, media: list[str]) -> None:
        playback = uuid.uuid4().hex
        self.playing.append(playback)  # its events may come before the answer does
        try:
            await self.call.ari.play(self.call.id, media, playback)
        except BaseException:
            self.playing.remove(playback)
            raise
        self.media += media
