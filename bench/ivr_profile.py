"""Where the key->prompt time goes (bench.ivr --profile): Asterisk's own timestamps of each
call's DTMF event and of the next playback's start, read by a bystander ARI app subscribed
to everything, split the time the UAC measured into three legs:

    key sent -> ChannelDtmfReceived      RTP in, Asterisk's DTMF handling (both paths)
    -> PlaybackStarted                   controller: event over the websocket, ctl's
                                         dispatch and runner, ARI POST play, playback set up
    -> first RTP at the UAC              the sound's first frame out and across loopback

Dialplan playbacks raise no ARI event, so its second leg is only the total minus the first.
The bystander costs Asterisk CPU (every event serialised once more): CPU figures of a
profiled run are not comparable with an unprofiled one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from bench.calls import percentile
from bench.stack import Stack
from bench.uac import CallResult


@dataclass
class Marks:
    """Asterisk's times (epoch seconds) for one caller's channel."""

    dtmf: float | None = None
    playback: list[float] = field(default_factory=list)


class Profiler:
    """Off unless enabled: watching() then records Marks by caller number."""

    def __init__(self, stack: Stack, enabled: bool) -> None:
        self.stack, self.enabled = stack, enabled
        self.marks: dict[str, Marks] = {}
        self._numbers: dict[str, str] = {}  # channel id -> caller number
        # perf_counter (the UAC's clock) -> epoch (Asterisk's), taken once
        self.offset = time.time() - time.perf_counter()

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        ari = self.stack.ari
        ready = asyncio.Event()
        task = asyncio.create_task(self._read(ari.http, ari.ws_url + "&subscribeAll=true",
                                              ready))
        await asyncio.wait_for(ready.wait(), 10)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read(self, http: aiohttp.ClientSession, url: str, ready: asyncio.Event) -> None:
        async with http.ws_connect(url) as ws:
            ready.set()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on(json.loads(msg.data))

    def _on(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "StasisStart" or kind == "ChannelDtmfReceived":
            channel = event["channel"]
            self._numbers[channel["id"]] = channel["caller"]["number"]
        if kind == "ChannelDtmfReceived":
            marks = self.marks.setdefault(self._numbers[event["channel"]["id"]], Marks())
            marks.dtmf = marks.dtmf or _epoch(event["timestamp"])
        elif kind == "PlaybackStarted":
            target = event["playback"]["target_uri"].removeprefix("channel:")
            if target in self._numbers:
                marks = self.marks.setdefault(self._numbers[target], Marks())
                marks.playback.append(_epoch(event["timestamp"]))

    def legs(self, results: Sequence[CallResult]) -> list[list[float]]:
        """Per call in ms: key->DTMF event, DTMF event->playback start, ->first RTP."""
        out: list[list[float]] = [[], [], []]
        for r in results:
            m = self.marks.get(r.number)
            if m is None or m.dtmf is None or r.key_at is None or r.reply_at is None:
                continue
            key, reply = r.key_at + self.offset, r.reply_at + self.offset
            out[0].append((m.dtmf - key) * 1000)
            started = next((t for t in m.playback if t >= m.dtmf), None)
            if started is None:
                out[1].append((reply - m.dtmf) * 1000)  # dialplan: no playback event
                continue
            out[1].append((started - m.dtmf) * 1000)
            out[2].append((reply - started) * 1000)
        return out

    def report(self, name: str, results: Sequence[CallResult]) -> None:
        if not self.enabled:
            return
        labels = ("key -> ChannelDtmfReceived", "-> PlaybackStarted", "-> first RTP")
        if name == "dialplan":
            labels = ("key -> ChannelDtmfReceived", "-> first RTP", "")
        print(f"  profile {name} (ms, Asterisk timestamps have 1 ms resolution):")
        for label, values in zip(labels, self.legs(results), strict=True):
            if label and values:
                print(f"    {label:28} p50 {statistics.median(values):7.1f}  "
                      f"p99 {percentile(values, 99):7.1f}  ({len(values)} calls)")


def _epoch(stamp: str) -> float:
    # ARI: 2026-11-24T23:59:59.123+0000
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
