"""The channels' public endpoints under random input: refused with a 4xx and a reason,
never a 5xx, and nothing half-stored (hypothesis)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sms.webhook import sign
from tests.integration.channels_app import App, channel_settings, database, running

SECRET = "fuzz-secret"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                               max_size=5),
    max_leaves=12)
# Objects shaped like the real ones, with wrong or odd values.
FORMS = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["hello", "start", "offline", "message", "typing", "csat", "leave",
                             "ping", "nope"]) | st.text(max_size=8),
    "name": JSON, "email": JSON | st.emails(), "phone": JSON, "text": JSON, "cid": JSON,
    "token": JSON, "score": JSON, "from": JSON | st.just("+12025550150"), "id": JSON,
    "contact": JSON, "last_seq": JSON, "status": JSON})
FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    async with database("sqlite", data_dir) as url, running(channel_settings(
            data_dir, url, sms={"secret": SECRET}, rate_burst=10_000,
            rate_per_minute=600_000)) as a:
        yield a


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _clean(status: int, body: Any) -> None:
    assert status < 500, body
    if status >= 400:
        assert isinstance(body, dict) and body.get("message"), body


@FUZZ
@given(body=FORMS | JSON)
async def test_sms_webhook(app: App, http: aiohttp.ClientSession, body: Any) -> None:
    raw = json.dumps(body).encode()
    ts = str(int(time.time()))
    for headers in ({"X-Timestamp": ts, "X-Signature": sign(SECRET, ts, raw)},
                    {"X-Timestamp": ts, "X-Signature": "0" * 64}, {}):
        for kind in ("inbound", "status"):
            async with http.post(f"{app.base}/channels/sms/{kind}", data=raw,
                                 headers=headers) as r:
                _clean(r.status, await r.json())


@FUZZ
@given(body=FORMS | JSON, raw=st.binary(max_size=200))
async def test_chat_offline_and_upload(app: App, http: aiohttp.ClientSession, body: Any,
                                       raw: bytes) -> None:
    async with http.post(f"{app.base}/chat/offline", json=body) as r:
        _clean(r.status, await r.json())
    async with http.post(f"{app.base}/chat/offline", data=raw) as r:
        _clean(r.status, await r.json())
    async with http.post(f"{app.base}/chat/upload?cid=x", data=raw,
                         headers={"X-Chat-Token": raw.hex()[:40] + ".sig"}) as r:
        _clean(r.status, await r.json())


@FUZZ
@given(frames=st.lists(FORMS | JSON, min_size=1, max_size=5))
async def test_chat_socket_frames(app: App, http: aiohttp.ClientSession,
                                  frames: list[Any]) -> None:
    """Any frames: the socket answers (errors name the problem) and stays usable."""
    async with http.ws_connect(f"{app.base}/chat/ws") as ws:
        for frame in frames:
            await ws.send_str(json.dumps(frame))
        await ws.send_json({"type": "ping"})
        while True:
            msg = await ws.receive(timeout=3)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break  # the server ended it (e.g. a message was left offline)
            body = msg.json()
            if body.get("type") == "error":
                assert body["message"]
            if body.get("type") in ("pong", "left_message"):
                break
