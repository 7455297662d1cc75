"""The ARI events websocket: one per app, a reader that never blocks, reconnect, resync."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from prometheus_client import Counter, Gauge

from ctl.telephony.ari import AriClient

log = logging.getLogger(__name__)

ARI_CONNECTED = Gauge("ctl_ari_connected", "1 while the ARI events websocket is up")
ARI_RECONNECTS = Counter("ctl_ari_reconnects_total", "ARI websocket (re)connections")

Event = dict[str, Any]


class EventStream:
    """Reads `/ari/events` for one app and hands each event to `on_event` (sync, cheap),
    and each answer to a request sent over it to the app's AriClient.

    NOTE: Asterisk closes a websocket that does not drain within websocket_write_timeout
    and keeps no backlog for a disconnected app, so the reader does no work of its own:
    `on_event` only routes into per-call queues. After every (re)connect `on_connect`
    runs (as a task, while events keep flowing) to resynchronise from REST.
    """

    def __init__(self, ari: AriClient, on_event: Callable[[Event], None],
                 on_connect: Callable[[], Awaitable[None]] | None = None,
                 max_backoff: float = 2.0) -> None:
        self.ari = ari
        self.on_event = on_event
        self.on_connect = on_connect
        self.max_backoff = max_backoff
        self.connected = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"ari-events-{self.ari.app}")

    async def stop(self) -> None:
        for t in (self._task, self._resync):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        self.connected.clear()
        ARI_CONNECTED.set(0)

    async def drop(self) -> None:
        """Cut the websocket (fault injection and tests); the stream reconnects by itself."""
        if self._ws is not None:
            await self._ws.close()

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                async with self.ari.http.ws_connect(self.ari.ws_url, heartbeat=20,
                                                    max_msg_size=0) as ws:
                    self._ws = ws
                    backoff = 0.05
                    self.connected.set()
                    ARI_CONNECTED.set(1)
                    ARI_RECONNECTS.inc()
                    log.info("ARI events connected", extra={"ctx": {"app": self.ari.app}})
                    self.ari.attach(ws)
                    if self.on_connect is not None:
                        self._resync = asyncio.create_task(self._guarded(self.on_connect))
                    await self._read(ws)
            except (aiohttp.ClientError, OSError) as e:
                log.debug("ARI events connect failed: %s", e)
            finally:
                if self._ws is not None:
                    self.ari.detach(self._ws)
                self._ws = None
                if self.connected.is_set():
                    log.warning("ARI events disconnected", extra={"ctx": {"app": self.ari.app}})
                self.connected.clear()
                ARI_CONNECTED.set(0)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            try:
                event = json.loads(msg.data)
                if event.get("type") == "RESTResponse":
                    self.ari.on_response(event)
                else:
                    self.on_event(event)
            except Exception:
                log.exception("ARI event handler failed")

    @staticmethod
    async def _guarded(fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await fn()
        except Exception:
            log.exception("ARI resync failed")


def channel_of(event: Event) -> str | None:
    """The channel an event is about, wherever ARI puts it."""
    if "channel" in event:
        return str(event["channel"]["id"])
    media: dict[str, Any] = event.get("playback") or event.get("recording") or {}
    target = str(media.get("target_uri", ""))
    if target.startswith("channel:"):
        return str(target.removeprefix("channel:"))
    return None
