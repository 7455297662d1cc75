"""ARI requests over an Asterisk that predates REST over the websocket: they stay on HTTP.

The real Asterisk (22.10) answers RESTRequest messages, so the integration tests cover the
websocket path; this plays an older one with a real aiohttp server: an events websocket
that ignores what it is sent, and the REST API over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType, web

from ctl.errors import NoSuchChannel, TelephonyUnavailable
from ctl.telephony import ari as ari_module
from ctl.telephony.ari import AriClient
from ctl.telephony.events import EventStream


class OldAsterisk:
    def __init__(self) -> None:
        self.received: list[str] = []  # what came over the websocket
        self.http_paths: list[str] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.arrivals: asyncio.Queue[str] = asyncio.Queue()  # "socket", or a message

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        self.arrivals.put_nowait("socket")
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.received.append(msg.data)  # ignored, as before Asterisk 22.4
                self.arrivals.put_nowait(msg.data)
        return ws

    async def rest(self, request: web.Request) -> web.Response:
        self.http_paths.append(request.path)
        if request.path.startswith("/ari/channels/gone"):
            return web.json_response({"message": "Channel not found"}, status=404)
        return web.json_response({"system": {"version": "20.0.0"}})


@pytest.fixture
async def old_asterisk() -> AsyncIterator[tuple[OldAsterisk, str]]:
    fake = OldAsterisk()
    app = web.Application()
    app.router.add_get("/ari/events", fake.events)
    app.router.add_route("*", "/ari/{tail:.*}", fake.rest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_unanswered_probe_keeps_requests_on_http(
        old_asterisk: tuple[OldAsterisk, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, url = old_asterisk
    monkeypatch.setattr(ari_module, "PROBE_TIMEOUT", 0.2)
    ari = AriClient(url, "ctl", "secret", "ctl")
    stream = EventStream(ari, lambda event: None)
    stream.start()
    try:
        assert await asyncio.wait_for(fake.arrivals.get(), 5) == "socket"
        assert ari._probe is not None
        await asyncio.wait_for(ari._probe, 5)
        assert len(fake.received) == 1 and '"RESTRequest"' in fake.received[0]  # the probe
        assert not ari.over_websocket
        assert (await ari.info())["system"]["version"] == "20.0.0"
        with pytest.raises(NoSuchChannel):
            await ari.answer("gone")
        assert fake.http_paths == ["/ari/asterisk/info", "/ari/channels/gone/answer"]
        # A reconnect does not probe again: this Asterisk was found not to answer.
        await fake.arrivals.get()  # the probe
        await stream.drop()
        assert await asyncio.wait_for(fake.arrivals.get(), 5) == "socket"
        await ari.info()
        assert len(fake.received) == 1 and not ari.over_websocket
    finally:
        await stream.stop()
        await ari.close()


async def test_request_pending_when_the_websocket_closes_is_unavailable(
        old_asterisk: tuple[OldAsterisk, str]) -> None:
    fake, url = old_asterisk
    ari = AriClient(url, "ctl", "secret", "ctl")
    stream = EventStream(ari, lambda event: None)
    stream.start()
    try:
        assert await asyncio.wait_for(fake.arrivals.get(), 5) == "socket"
        await asyncio.wait_for(stream.connected.wait(), 5)
        assert stream._ws is not None
        ari._ws = stream._ws  # as if the probe had been answered
        pending = asyncio.create_task(ari.answer("c1"))
        for _ in range(2):  # the probe, then the answer
            assert "RESTRequest" in await asyncio.wait_for(fake.arrivals.get(), 5)
        await fake.sockets[0].close()  # the server goes away without answering
        with pytest.raises(TelephonyUnavailable):
            await asyncio.wait_for(pending, 5)
        assert not ari.over_websocket
    finally:
        await stream.stop()
        await ari.close()
