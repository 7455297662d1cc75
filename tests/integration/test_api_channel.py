"""The API channel end to end: an admin's key, a platform's contacts and messages
(idempotent), an agent's reply to the platform's webhook (its signature checked here
independently) and by polling, delivery reports; every answer fits the OpenAPI document."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from ctl.store.models import ApiKey
from tests.integration.agent_api import Panel
from tests.integration.api_spec import conforms
from tests.integration.channels_app import (
    App,
    fake_platform,
    login,
    platform_agent,
    platform_app,
)


class Platform:
    """A third-party platform: its webhook (answers `fail` when set) and its calls."""

    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
        self.fail = 0
        self.key = ""
        self.base = ""
        self.http: aiohttp.ClientSession | None = None

    async def webhook(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.json_response({"error": "maintenance"}, status=self.fail)
        self.got.put_nowait((dict(request.headers), await request.read()))
        return web.json_response({})

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200,
                   key: str | None = None) -> Any:
        assert self.http is not None
        headers = {"X-API-Key": self.key if key is None else key}
        async with self.http.request(method, self.base + path, json=body,
                                     headers=headers) as r:
            got = await r.json()
            assert r.status == expect, (method, path, r.status, got)
        conforms(method, path, r.status, got)
        return got


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    async with platform_app(tmp_path_factory.mktemp("api")) as a:
        yield a


async def admin_call(admin: Panel, method: str, path: str, body: Any = None,
                     expect: int = 200) -> Any:
    got = await admin.call(method, path, body, expect=expect)
    conforms(method, path, expect, got)
    return got


async def test_platform_contact_reply_by_webhook_and_poll(app: App) -> None:
    shop = Platform()
    hook = web.Application()
    hook.router.add_post("/ctl", shop.webhook)
    async with fake_platform(hook) as hook_base, aiohttp.ClientSession() as http:
        shop.http, shop.base = http, app.base
        admin = await login(app, http, role="admin")
        made = await admin_call(admin, "POST", "/api/v1/api-keys",
                                {"name": "Shop", "webhook_url": hook_base + "/ctl"}, 201)
        other = await admin_call(admin, "POST", "/api/v1/api-keys", {"name": "Other"}, 201)
        shop.key, secret = made["key"], made["webhook_secret"]
        listed = await admin_call(admin, "GET", "/api/v1/api-keys")
        assert made["key"] not in str(listed) and secret not in str(listed)
        async with app.services.db.session(readonly=True) as s:
            row = await s.get(ApiKey, made["id"])
        assert row is not None and row.key_hash == hashlib.sha256(
            made["key"].encode()).hexdigest()
        agent = await platform_agent(app, http, "api")

        user = f"u-{uuid.uuid4().hex[:8]}"
        first = {"customer": {"kind": "account", "value": user, "name": "Ann"},
                 "conversation": f"chat-{user}", "subject": "Order 123",
                 "message": {"id": f"{user}-1", "text": "Where is my order?"}}
        opened = await shop.call("POST", "/api/v1/channel/contacts", first, 201)
        assert opened["opened"] and opened["seq"] == 1 \
            and opened["conversation"] == f"chat-{user}"
        again = await shop.call("POST", "/api/v1/channel/contacts", first, 200)
        assert again["duplicate"] and again["message"] == opened["message"]
        contact = opened["contact"]
        offer = await agent.next("offer")
        assert offer["offer"]["contact_id"] == contact
        await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
        path = f"/api/v1/channel/contacts/{contact}/messages"
        second = await shop.call("POST", path, {"message": {"id": f"{user}-2",
                                                            "text": "It is late"}}, 201)
        assert (second["contact"], second["seq"], second["opened"]) == (contact, 2, False)
        pushed = await agent.next("message")
        assert pushed["message"]["text"] == "It is late" \
            and pushed["message"]["address"] == f"account:{user}"

        sent = await agent.call("POST", f"/api/v1/contacts/{contact}/messages",
                                {"text": "On its way"}, expect=201)
        headers, raw = await asyncio.wait_for(shop.got.get(), 5)
        ts = headers["X-Ctl-Timestamp"]
        assert abs(int(ts) - time.time()) < 60
        mac = hmac.new(secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
        assert headers["X-Ctl-Signature"] == f"sha256={mac}"
        body = json.loads(raw)
        assert (body["type"], body["conversation"], body["contact"]) == (
            "message", f"chat-{user}", contact)
        assert (body["message"]["id"], body["message"]["seq"], body["message"]["text"]) == (
            sent["id"], 3, "On its way")

        polled = await shop.call("GET", path + "?after=2")
        assert [(m["seq"], m["direction"], m["status"]) for m in polled["messages"]] == [
            (3, "out", "sent")] and polled["state"] == "assigned"
        await shop.call("POST", f"/api/v1/channel/messages/{sent['id']}/status",
                        {"status": "read"})
        told = await agent.next("message_status")
        assert (told["message"], told["status"]) == (sent["id"], "read")
        assert (await shop.call("GET", path + "?after=2"))["messages"][0]["status"] == "read"

        shop.fail = 503  # the platform is down: the reply is failed with the reason
        failed = await agent.call("POST", f"/api/v1/contacts/{contact}/messages",
                                  {"text": "Still there?"}, expect=502)
        assert "503" in failed["message"]
        last = (await shop.call("GET", path + "?after=3"))["messages"]
        assert last[0]["status"] == "failed" and "503" in last[0]["status_reason"]

        # Another platform sees none of it, and a key that is gone opens nothing.
        for method, where, body in (("GET", path, None), ("POST", path,
                                                   {"message": {"id": "x1", "text": "hi"}}),
                ("POST", f"/api/v1/channel/messages/{sent['id']}/status",
                 {"status": "delivered"})):
            await shop.call(method, where, body, 404, key=other["key"])
        await admin_call(admin, "DELETE", f"/api/v1/api-keys/{other['id']}")
        gone = await shop.call("POST", "/api/v1/channel/contacts", first, 401,
                               key=other["key"])
        assert "revoked" in gone["message"]
        missing = await shop.call("POST", "/api/v1/channel/contacts", first, 401, key="")
        assert "X-API-Key" in missing["message"]
        await agent.state("offline")
        await agent.close()


async def test_bad_input_refused_with_the_reason(app: App) -> None:
    shop = Platform()
    async with aiohttp.ClientSession() as http:
        shop.http, shop.base = http, app.base
        admin = await login(app, http, role="admin")
        shop.key = (await admin_call(admin, "POST", "/api/v1/api-keys", {"name": "Bad"},
                                     201))["key"]
        for body, expect, words in (
                ({"message": {"id": "m", "text": "x"}}, 400, "customer"),
                ({"customer": {"kind": "shoe", "value": "1"},
                  "message": {"id": "m", "text": "x"}}, 400, "identity kind"),
                ({"customer": {"kind": "phone", "value": "not a number"},
                  "message": {"id": "m", "text": "x"}}, 422, "phone"),
                ({"customer": {"kind": "account", "value": "a"},
                  "message": {"id": "has space", "text": "x"}}, 400, "message.id"),
                ({"customer": {"kind": "account", "value": "a"}, "conversation": "",
                  "message": {"id": "m", "text": "x"}}, 400, "conversation"),
                ({"customer": {"kind": "account", "value": "a"},
                  "message": {"id": "m", "text": " "}}, 400, "text")):
            got = await shop.call("POST", "/api/v1/channel/contacts", body, expect)
            assert words in got["message"], (body, got)
        got = await shop.call("GET", "/api/v1/channel/contacts/nope/messages?after=-1", None,
                              400)
        assert "after" in got["message"]
        got = await shop.call("POST", "/api/v1/channel/messages/nope/status",
                              {"status": "sent"}, 400)
        assert "delivered" in got["message"]
        agent = await login(app, http)  # agents do not make keys
        refused = await agent.call("POST", "/api/v1/api-keys", {"name": "x"}, expect=403)
        conforms("POST", "/api/v1/api-keys", 403, refused)
        got = await admin_call(admin, "POST", "/api/v1/api-keys",
                               {"name": "x", "webhook_url": "ftp://x"}, 400)
        assert "http" in got["message"]
    async with app.services.db.session(readonly=True) as s:
        assert (await s.scalars(select(ApiKey).where(ApiKey.name == "x"))).first() is None
