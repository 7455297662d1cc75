"""Douyin Open Platform end to end: webhooks signed as Douyin documents them (built here
independently of the adapter), the URL challenge, and replies through a local fake of
Douyin's send-message and token-refresh API."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from adapters.douyin.api import DouyinApi
from adapters.douyin.webhook import MESSAGE_REF
from ctl.channels.contract import DeliveryFailed, Outgoing
from ctl.channels.settings import DouyinSettings
from ctl.store.models import Customer, Message
from tests.integration.channels_app import (
    App,
    fake_platform,
    platform_agent,
    platform_app,
    shared_lives,
)

KEY, SECRET, BUSINESS = "awtestclientkey", "douyin-client-secret", "_000business-open-id"
PNG = b"\x89PNG\r\n\x1a\n" + b"douyin" * 100
LIMIT = 64 * 1024  # channels.max_attachment_bytes here


def event(sender: str, text: str | None = "你好", kind: str = "text", msg: str | None = None,
          conversation: str = "@c29bfc000+MNggFhRkwGuX1ntuc0QfA0VnmRejrzWUBw==",
          as_string: bool = False, resource: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {
        "conversation_short_id": conversation,
        "server_message_id": msg or f"@srv{uuid.uuid4().hex}", "conversation_type": 1,
        "message_type": kind, "create_time": int(time.time() * 1000),
        "user_infos": [{"open_id": sender, "nick_name": "小王", "avatar": "https://p3/x.jpg"}]}
    if text is not None:
        content["text"] = text
    if resource is not None:
        content["resource_url"] = resource
    return {"event": "im_receive_msg", "client_key": KEY, "from_user_id": sender,
            "to_user_id": BUSINESS, "log_id": uuid.uuid4().hex,
            "content": json.dumps(content, ensure_ascii=False) if as_string else content}


class FakeDouyin:
    """/im/send/msg/ and /oauth/refresh_token/ as Douyin documents them, and its CDN's
    files (/obj/NAME)."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.valid = {"act.first"}
        self.refreshes = 0

    async def send(self, request: web.Request) -> web.Response:
        if request.headers.get("access-token") not in self.valid:
            return web.json_response({"data": {"error_code": 2190008,
                                               "description": "access_token过期"},
                                      "extra": {"error_code": 2190008}})
        if request.query.get("open_id") != BUSINESS:
            return web.json_response({"data": {"error_code": 2190015,
                                               "description": "open_id不匹配"}})
        body = await request.json()
        if body.get("to_user_id") == "gone":
            return web.json_response({"err_no": 28001018, "err_msg": "会话已过期",
                                      "data": {}})
        self.sent.put_nowait(body)
        return web.json_response({"data": {"msg_id": f"@sent{self.sent.qsize()}",
                                           "error_code": 0, "description": ""},
                                  "extra": {"error_code": 0, "description": ""}})

    async def file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "big":
            return web.Response(body=b"\0" * (LIMIT + 1), content_type="image/png")
        if name == "expired":
            return web.json_response({"err_no": 28003017, "err_msg": "资源已过期"})
        return web.Response(body=PNG, content_type="image/png")

    async def refresh(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_key") != KEY or form.get("refresh_token") != "rft.first" \
                or form.get("grant_type") != "refresh_token":
            return web.json_response({"data": {"error_code": 10008,
                                               "description": "refresh_token无效"}})
        self.refreshes += 1
        token = f"act.{uuid.uuid4().hex}"
        self.valid = {token}
        return web.json_response({"data": {"access_token": token, "expires_in": 1296000,
                                           "refresh_token": "rft.first", "open_id": BUSINESS,
                                           "error_code": 0, "description": ""},
                                  "message": "success"})


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[tuple[FakeDouyin, str]]:
    dy = FakeDouyin()
    app = web.Application()
    app.router.add_post("/im/send/msg/", dy.send)
    app.router.add_post("/oauth/refresh_token/", dy.refresh)
    app.router.add_get("/obj/{name:.+}", dy.file)
    async with fake_platform(app) as base:
        yield dy, base


@contextlib.asynccontextmanager
async def douyin_app(data_dir: Path, base: str) -> AsyncIterator[App]:
    douyin = {"client_key": KEY, "client_secret": SECRET, "open_id": BUSINESS,
              "access_token": "act.first", "refresh_token": "rft.first", "api_base": base,
              "media_hosts": ["127.0.0.1"]}
    async with platform_app(data_dir, douyin=douyin, max_attachment_bytes=LIMIT) as a:
        yield a


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory, fake: tuple[FakeDouyin, str]
              ) -> AsyncIterator[App]:
    async with douyin_app(tmp_path_factory.mktemp("douyin"), fake[1]) as a:
        yield a


async def post(app: App, http: aiohttp.ClientSession, body: Any, secret: str = SECRET,
               sign: str | None = None) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    signature = sign if sign is not None else hashlib.sha1(secret.encode() + raw).hexdigest()
    headers = {"Content-Type": "application/json", "Msg-Id": uuid.uuid4().hex}
    if signature:
        headers["X-Douyin-Signature"] = signature
    async with http.post(f"{app.base}/channels/douyin", data=raw, headers=headers) as r:
        return r.status, await r.json()


async def of_sender(app: App, sender: str) -> list[Message]:
    async with app.services.db.session(readonly=True) as s:
        return list((await s.scalars(select(Message).where(
            Message.channel == "douyin", Message.address == sender)
            .order_by(Message.seq))).all())


async def test_url_challenge(app: App) -> None:
    check = {"event": "verify_webhook", "client_key": "", "content": {"challenge": 12345}}
    async with aiohttp.ClientSession() as http:
        assert await post(app, http, check) == (200, {"challenge": 12345})
        status, body = await post(app, http, check, secret="wrong")
        assert status == 401 and "does not match" in body["message"]
        status, body = await post(app, http, check, sign="")
        assert status == 401 and "missing" in body["message"]


async def test_private_messages_stored_once(app: App) -> None:
    sender = f"_000{uuid.uuid4().hex}"
    first = event(sender, "我的订单没到", msg="@srv-1-" + sender)
    async with aiohttp.ClientSession() as http:
        assert await post(app, http, first) == (200, {})
        assert await post(app, http, first) == (200, {})  # Douyin's retry (or a replay)
        assert await post(app, http, event(sender, "订单号 123", as_string=True)) == (200, {})
        assert await post(app, http, event(sender, None, kind="image")) == (200, {})
        for other in ({**first, "event": "im_send_msg"},
                      {**first, "event": "im_enter_direct_msg"},
                      {"event": "authorize", "from_user_id": sender, "content": {"scopes": []}}):
            assert await post(app, http, other) == (200, {})
    got = await of_sender(app, sender)
    assert [m.text for m in got] == ["我的订单没到", "订单号 123", "[image]"]
    assert len({m.contact_id for m in got}) == 1
    assert got[0].external_id.endswith("/@srv-1-" + sender) and got[0].meta["to"] == BUSINESS
    async with app.services.db.session(readonly=True) as s:
        customer = await s.get(Customer, got[0].customer_id)
    assert customer is not None and customer.display_name == "小王"


async def test_media_downloaded_into_attachments(app: App, fake: tuple[FakeDouyin, str]
                                                 ) -> None:
    """The files messages name are stored; one that cannot be had (expired, too large,
    not on Douyin's hosts) leaves its message kept, saying why."""
    sender, cdn = f"_000{uuid.uuid4().hex}", fake[1] + "/obj/"
    async with aiohttp.ClientSession() as http:
        for kind, resource in (("image", cdn + "tos-cn-i-0813/photo.png"),
                               ("user_local_image", cdn + "noname"),
                               ("image", cdn + "expired"), ("image", cdn + "big"),
                               ("image", "https://evil.example/x.png"), ("image", None)):
            assert await post(app, http, event(sender, None, kind=kind,
                                               resource=resource)) == (200, {})
    got = await of_sender(app, sender)
    assert [(a["name"], a["type"], a["size"]) for m in got[:2] for a in m.attachments] == [
        ("photo.png", "image/png", len(PNG)),
        (got[1].external_id.rsplit("/@", 1)[1] + ".png", "image/png", len(PNG))]
    assert app.services.channels.attachments.path(
        got[0].attachments[0]["sha256"]).read_bytes() == PNG
    assert [m.attachments for m in got[2:]] == [[]] * 4
    assert "28003017" in got[2].meta["media_error"]
    assert "limit" in got[3].meta["media_error"]
    assert "media_hosts" in got[4].meta["media_error"]
    assert "media_error" not in got[5].meta  # named no file


async def test_bad_webhooks_refused_with_a_reason(app: App) -> None:
    sender = f"_000{uuid.uuid4().hex}"
    async with aiohttp.ClientSession() as http:
        status, body = await post(app, http, event(sender), secret="wrong")
        assert status == 401 and "does not match" in body["message"]
        status, body = await post(app, http, {**event(sender), "client_key": "someone-else"})
        assert status == 401 and "not ours" in body["message"]
        status, body = await post(app, http, b"{not json")
        assert status == 400 and "not JSON" in body["message"]
        status, body = await post(app, http, event(sender, "  "))
        assert status == 400 and "content.text" in body["message"]
        bad = event(sender)
        del bad["content"]["server_message_id"]
        status, body = await post(app, http, bad)
        assert status == 400 and "server_message_id" in body["message"]
        status, body = await post(app, http, {**event(sender), "content": "[1, 2]"})
        assert status == 400 and "content" in body["message"]
        status, _ = await post(app, http, b"{" + b" " * 70_000 + b"}")
        assert status == 413
    assert await of_sender(app, sender) == []


async def test_agent_replies_answering_the_latest_message(
        tmp_path: Path, fake: tuple[FakeDouyin, str]) -> None:
    dy, sender = fake[0], f"_000{uuid.uuid4().hex}"
    async with douyin_app(tmp_path, fake[1]) as app, aiohttp.ClientSession() as http:
        agent = await platform_agent(app, http, "douyin")
        assert await post(app, http, event(sender, "能退款吗", msg="@m1")) == (200, {})
        [msg] = await of_sender(app, sender)
        offer = await agent.next("offer")
        assert offer["offer"]["contact_id"] == msg.contact_id
        await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
        assert await post(app, http, event(sender, "在吗", msg="@m2")) == (200, {})
        await agent.next("message")
        dy.valid = {"act.revoked"}  # the token expired: renewed once, then sent
        await agent.call("POST", f"/api/v1/contacts/{msg.contact_id}/messages",
                         {"text": "可以,请稍等"}, expect=201)
        sent = await asyncio.wait_for(dy.sent.get(), 5)
        assert sent == {"msg_id": "@m2", "conversation_id": event(sender)["content"][
            "conversation_short_id"], "to_user_id": sender,
            "content": {"msg_type": 1, "text": {"text": "可以,请稍等"}}}
        assert dy.refreshes == 1 and app.services.douyin.refreshes == 1
        got = await of_sender(app, sender)
        assert got[-1].direction == "out" and got[-1].status == "sent"
        assert got[-1].external_id == "douyin:sent:@sent1"
        await agent.state("offline")
        await agent.close()
    async with douyin_app(tmp_path, fake[1]) as app:
        with pytest.raises(DeliveryFailed, match="needs a customer's message"):
            await app.services.outbound.send("douyin", sender, "cold")


@pytest.mark.pg
async def test_renewed_token_shared_by_controllers_and_restarts(
        fake: tuple[FakeDouyin, str]) -> None:
    """One controller renews; another, and the next start, send with the renewed token
    (Redis) instead of each renewing; a newly configured token wins over the kept one."""
    dy, base = fake
    conf = DouyinSettings(client_key=KEY, client_secret=SECRET, open_id=BUSINESS,
                          access_token="act.first", refresh_token="rft.first", api_base=base)
    out = Outgoing("m1", "douyin", "_000customer", "稍等", refs=(f"{MESSAGE_REF}@conv/@m1",))
    async with shared_lives(4) as lives:
        apis = [DouyinApi(conf, lives[0]), DouyinApi(conf, lives[1])]
        try:
            dy.valid, before = {"act.revoked"}, dy.refreshes
            for api in apis:
                assert await api.send(out)
            assert [a.refreshes for a in apis] == [1, 0] and dy.refreshes == before + 1
            apis.append(DouyinApi(conf, lives[2]))  # a restart reads the renewal back
            assert await apis[-1].send(out) and apis[-1].refreshes == 0
            dy.valid = {"act.second"}  # the operator configured a new token
            apis.append(DouyinApi(conf.model_copy(update={"access_token": "act.second"}),
                                  lives[3]))
            assert await apis[-1].send(out) and dy.refreshes == before + 1
        finally:
            for api in apis:
                await api.close()
    while not dy.sent.empty():
        dy.sent.get_nowait()


FIELDS = st.fixed_dictionaries({}, optional={
    "event": st.sampled_from(["im_receive_msg", "verify_webhook", "im_send_msg"])
    | st.text(max_size=10),
    "client_key": st.just(KEY) | st.text(max_size=10) | st.integers() | st.none(),
    "from_user_id": st.text(max_size=20) | st.integers() | st.none(),
    "content": st.fixed_dictionaries({}, optional={
        "conversation_short_id": st.text(max_size=20) | st.integers(),
        "server_message_id": st.text(max_size=20) | st.integers(),
        "message_type": st.sampled_from(["text", "image", "video"]) | st.text(max_size=5),
        "text": st.text(max_size=40) | st.integers() | st.none(),
        "challenge": st.integers() | st.text(max_size=5),
        "user_infos": st.lists(st.dictionaries(st.sampled_from(["open_id", "nick_name"]),
                                               st.text(max_size=8)), max_size=2)
        | st.text(max_size=5)}) | st.text(max_size=30) | st.integers()})
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=FIELDS | st.binary(max_size=100), good=st.booleans(),
       sign=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=45))
async def test_fuzzed_webhooks_never_5xx(app: App, body: Any, good: bool, sign: str) -> None:
    async with aiohttp.ClientSession() as http:
        status, answer = await post(app, http, body, sign=None if good else sign)
    assert status < 500, answer
    if status >= 400:
        assert answer["message"], answer
    else:
        assert good  # nothing unsigned gets in
