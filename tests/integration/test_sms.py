"""SMS through a generic HTTP gateway: signed webhooks in (bad, missing, stale and
replayed signatures refused), the send template out to a gateway the test runs, and
delivery receipts."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from adapters.sms.webhook import sign
from ctl.channels.contract import DeliveryFailed
from ctl.store.models import Message
from tests.integration.agent_api import Panel
from tests.integration.channels_app import App, add_agent, channel_settings, database, running
from tests.integration.harness import free_port

SECRET = "gateway-shared-secret"


class Gateway:
    """The SMS gateway's documented side: POST /send, answers {"id": ...}."""

    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()
        self.fail = False

    async def send(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.json_response({"error": "insufficient credit"}, status=402)
        self.got.put_nowait((await request.json(), request.headers.get("Authorization", "")))
        return web.json_response({"id": f"gw-{uuid.uuid4().hex[:8]}"})


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[tuple[Gateway, int]]:
    gw = Gateway()
    app = web.Application()
    app.router.add_post("/send", gw.send)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield gw, port
    await runner.cleanup()


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory, gateway: tuple[Gateway, int]
              ) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("sms")
    sms = {"secret": SECRET, "send_url": f"http://127.0.0.1:{gateway[1]}/send",
           "sender": "+15550100", "send_headers": {"Authorization": "Bearer gw-token"}}
    async with database("sqlite", data_dir) as url, \
            running(channel_settings(data_dir, url, sms=sms)) as a:
        yield a


async def hook(app: App, http: aiohttp.ClientSession, body: dict[str, Any] | bytes,
               kind: str = "inbound", *, secret: str = SECRET, at: float | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = str(int(at if at is not None else time.time()))
    sent = headers if headers is not None else {
        "X-Timestamp": ts, "X-Signature": sign(secret, ts, raw)}
    async with http.post(f"{app.base}/channels/sms/{kind}", data=raw, headers=sent) as r:
        return r.status, await r.json()


async def test_sms_in_and_reply_out(app: App, gateway: tuple[Gateway, int]) -> None:
    user = f"s{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user, queues=("general",))
    async with aiohttp.ClientSession() as http:
        agent = await Panel(app.base, http).login(user, password)
        await agent.listen()
        await agent.state("available")
        status, body = await hook(app, http, {"from": "(202) 555-0143", "text": "where is my order",
                                              "id": "in-1", "to": "+15550100"})
        assert status == 201
        offer = await agent.next("offer")
        assert offer["offer"]["contact_id"] == body["contact"]
        await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
        again = await hook(app, http, {"from": "+12025550143", "text": "where is my order",
                                       "id": "in-1"})
        assert again[0] == 200 and again[1]["duplicate"]
        await agent.call("POST", f"/api/v1/contacts/{body['contact']}/messages",
                         {"text": "It ships \"today\" — 今天"}, expect=201)
        sent, auth = await asyncio.wait_for(gateway[0].got.get(), 5)
        assert sent["to"] == "+12025550143" and sent["from"] == "+15550100"
        assert sent["text"] == "It ships \"today\" — 今天" and auth == "Bearer gw-token"
        async with app.services.db.session(readonly=True) as s:
            out = (await s.scalars(select(Message).where(Message.id == sent["ref"]))).one()
        assert out.status == "sent" and out.external_id and out.external_id.startswith("gw-")
        status, known = await hook(app, http, {"id": out.external_id, "status": "delivered"},
                                   "status")
        assert status == 200 and known["known"]
        receipt = await agent.next("message_status")
        assert receipt["status"] == "delivered"
        await agent.state("offline")
        await agent.close()


async def test_bad_webhooks_are_refused(app: App) -> None:
    msg = {"from": "+12025550144", "text": "hi", "id": "in-bad"}
    async with aiohttp.ClientSession() as http:
        status, body = await hook(app, http, msg, headers={})
        assert status == 401 and "required" in body["message"]
        status, body = await hook(app, http, msg, secret="wrong")
        assert status == 401 and "signature" in body["message"]
        status, body = await hook(app, http, msg, at=time.time() - 3600)
        assert status == 401 and "stale" in body["message"]
        ts = str(int(time.time()))
        raw = json.dumps(msg).encode()
        headers = {"X-Timestamp": ts, "X-Signature": sign(SECRET, ts, raw)}
        assert (await hook(app, http, raw, headers=headers))[0] == 201
        status, body = await hook(app, http, raw, headers=headers)  # the same request again
        assert status == 409 and body["error"] == "replayed"
        tampered = raw.replace(b"hi", b"ho")
        status, _ = await hook(app, http, tampered, headers=headers)
        assert status == 401
        status, body = await hook(app, http, b"not json")
        assert status == 400 and "JSON" in body["message"]
        status, body = await hook(app, http, {"from": "+12025550144"})
        assert status == 400 and '"text"' in body["message"]
        status, body = await hook(app, http, {"from": "12", "text": "x"})
        assert status == 422 and "identify" in body["message"]


async def test_notifications_and_gateway_failures(app: App, gateway: tuple[Gateway, int]
                                                  ) -> None:
    out = app.services.outbound
    message_id = await out.send("sms", "+12025550145", "Ticket 12 solved", thread="ticket-12")
    sent, _ = await asyncio.wait_for(gateway[0].got.get(), 5)
    assert sent["ref"] == message_id and sent["text"] == "Ticket 12 solved"
    gateway[0].fail = True
    try:
        with pytest.raises(DeliveryFailed, match="402"):
            await out.send("sms", "+12025550145", "Ticket 12 reopened")
    finally:
        gateway[0].fail = False
    with pytest.raises(DeliveryFailed, match="not a phone number"):
        await out.send("sms", "call me", "x")
