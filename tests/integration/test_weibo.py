"""Weibo fan service end to end: pushes signed as Weibo documents them (built here
independently of the adapter), replay protection, and replies through a local fake of
Weibo's messages/reply API."""

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
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ctl.channels.contract import DeliveryFailed
from ctl.store.models import Message
from tests.integration.channels_app import (
    App,
    fake_platform,
    platform_agent,
    platform_app,
)

SECRET, TOKEN = "xyz123xyz", "2.00weibo-token"
JPEG = b"\xff\xd8\xff\xe0" + b"weibo-image" * 50
AMR = b"#!AMR\n" + b"\x3c" * 300
LIMIT = 64 * 1024  # channels.max_attachment_bytes here


def sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signed(at: float | None = None, secret: str = SECRET, nonce: str | None = None
           ) -> dict[str, str]:
    """Weibo's query: a millisecond timestamp, as in its documentation's example."""
    ts = str(int((at if at is not None else time.time()) * 1000))
    nonce = nonce or str(uuid.uuid4().int % 10**8)
    return {"timestamp": ts, "nonce": nonce, "signature": sha1(secret, ts, nonce)}


def push(sender: int, kind: str = "text", text: str = "", data: Any = None,
         created: str = "Mon Jul 16 18:09:20 +0800 2012") -> dict[str, Any]:
    return {"type": kind, "receiver_id": 1902538057, "sender_id": sender,
            "created_at": created, "text": text, "data": data if data is not None else {}}


class FakeWeibo:
    """POST /2/messages/reply.json as Weibo documents it (form-encoded, data = JSON)."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def reply(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") != TOKEN:
            return web.json_response({"error": "invalid_access_token", "error_code": 21332,
                                      "request": "/2/messages/reply.json"}, status=401)
        if not request.content_type.startswith("application/x-www-form-urlencoded"):
            return web.json_response({"error": "bad content type", "error_code": 10008})
        form = {k: v[0] for k, v in parse_qs((await request.read()).decode()).items()}
        if form.get("receiver_id") == "404":
            return web.json_response({"error": "no quota to reply", "error_code": 20016,
                                      "request": "/2/messages/reply.json"}, status=400)
        data = json.loads(form["data"])
        if form.get("type") != "text" or len(data.get("text", "")) > 300:
            return web.json_response({"error": "text too long", "error_code": 20019})
        self.sent.put_nowait({**form, "data": data})
        n = self.sent.qsize()
        return web.json_response({"id": 3700000000 + n, "idstr": str(3700000000 + n),
                                  "text": data["text"], "recipient_id": int(form["receiver_id"])})

    async def msget(self, request: web.Request) -> web.Response:
        """GET /2/mss/msget: a file by its fid, or Weibo's JSON error."""
        if request.query.get("access_token") != TOKEN:
            return web.json_response({"error": "invalid_access_token", "error_code": 21332})
        files = {"822": (JPEG, "image/jpeg"), "832": (AMR, "audio/amr"),
                 "big": (b"\0" * (LIMIT + 1), "image/png")}
        if request.query.get("fid") not in files:
            return web.json_response({"error": "file does not exist", "error_code": 21602,
                                      "request": "/2/mss/msget"})
        data, kind = files[request.query["fid"]]
        return web.Response(body=data, content_type=kind)


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[tuple[FakeWeibo, str]]:
    wb = FakeWeibo()
    app = web.Application()
    app.router.add_post("/2/messages/reply.json", wb.reply)
    app.router.add_get("/2/mss/msget", wb.msget)
    async with fake_platform(app) as base:
        yield wb, base


@contextlib.asynccontextmanager
async def weibo_app(data_dir: Path, base: str) -> AsyncIterator[App]:
    weibo = {"app_secret": SECRET, "access_token": TOKEN, "api_base": base,
             "media_base": base}
    async with platform_app(data_dir, weibo=weibo, max_attachment_bytes=LIMIT) as a:
        yield a


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory, fake: tuple[FakeWeibo, str]
              ) -> AsyncIterator[App]:
    async with weibo_app(tmp_path_factory.mktemp("weibo"), fake[1]) as a:
        yield a


async def post(app: App, http: aiohttp.ClientSession, body: Any,
               query: dict[str, str] | None = None) -> tuple[int, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    params = signed() if query is None else query
    async with http.post(f"{app.base}/channels/weibo", params=params, data=raw,
                         headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.text()


async def of_sender(app: App, sender: int) -> list[Message]:
    async with app.services.db.session(readonly=True) as s:
        return list((await s.scalars(select(Message).where(
            Message.channel == "weibo", Message.address == str(sender))
            .order_by(Message.seq))).all())


def test_signature_is_the_documented_example() -> None:
    from adapters.weibo.callback import signature  # the documentation's worked example
    assert signature("xyz123xyz", "1397022061823", "57155157") == \
        "90e4c22c90a58f26526c2dd5b6c56c8822edeaa1"


async def test_url_verification(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{app.base}/channels/weibo",
                            params={**signed(), "echostr": "dnPdpTZz85"}) as r:
            assert r.status == 200 and await r.text() == "dnPdpTZz85"
        async with http.get(f"{app.base}/channels/weibo",
                            params={**signed(secret="other"), "echostr": "x"}) as r:
            assert r.status == 401 and "does not match" in (await r.json())["message"]
        async with http.get(f"{app.base}/channels/weibo", params={"echostr": "x"}) as r:
            assert r.status == 401 and "missing" in (await r.json())["message"]


async def test_messages_stored_once_in_one_conversation(app: App) -> None:
    sender = 2489518277000 + uuid.uuid4().int % 1000
    async with aiohttp.ClientSession() as http:
        q = signed()
        assert await post(app, http, push(sender, text="快递到哪了"), q) == (200, "")
        assert await post(app, http, push(sender, text="快递到哪了"), q) == (200, "")  # retry
        # Another message in the same second is another message.
        assert await post(app, http, push(sender, text="还有发票")) == (200, "")
        image = push(sender, "image", "图片", {"vfid": "821", "tovfid": "822"})
        voice = push(sender, "voice", "语音", {"vfid": "831", "tovfid": "832"},
                     created="Mon Jul 16 18:09:21 +0800 2012")
        position = push(sender, "position", "我在这里", {"longitude": "116.3", "latitude": "39.9"})
        follow = push(sender, "event", "事件消息", {"subtype": "follow", "key": "k"})
        gone = push(sender, "image", "图片", {"vfid": "1", "tovfid": "expired"},
                    created="Mon Jul 16 18:09:22 +0800 2012")
        big = push(sender, "image", "图片", {"vfid": "2", "tovfid": "big"},
                   created="Mon Jul 16 18:09:23 +0800 2012")
        for body in (image, voice, position, follow, gone, big):
            assert await post(app, http, body) == (200, "")
        for ignored in (push(sender, "event", "", {"subtype": "click", "key": "MENU"}),
                        push(sender, "mention", "@us hello"), push(sender, "hologram")):
            assert await post(app, http, ignored) == (200, "")
    got = await of_sender(app, sender)
    assert [m.text for m in got] == ["快递到哪了", "还有发票", "[image]", "[voice]",
                                     "[position] 我在这里", "[followed]", "[image]", "[image]"]
    assert len({m.contact_id for m in got}) == 1
    assert got[2].meta["vfid"] == "821" and got[4].meta["latitude"] == "39.9"
    # The files the pushes name, downloaded into the attachment store...
    assert [(a["name"], a["type"], a["size"]) for a in got[2].attachments + got[3].attachments
            ] == [("822.jpg", "image/jpeg", len(JPEG)), ("832.amr", "audio/amr", len(AMR))]
    stored = app.services.channels.attachments.path(got[2].attachments[0]["sha256"])
    assert stored.read_bytes() == JPEG
    # ...and the messages whose file could not be had are kept, saying why.
    assert got[6].attachments == [] and "21602" in got[6].meta["media_error"]
    assert got[7].attachments == [] and "limit" in got[7].meta["media_error"]


async def test_bad_pushes_refused_with_a_reason(app: App) -> None:
    sender = 2489518278000 + uuid.uuid4().int % 1000
    body = push(sender, text="hi")
    async with aiohttp.ClientSession() as http:
        status, text = await post(app, http, body, signed(secret="wrong"))
        assert status == 401 and "does not match" in text
        status, text = await post(app, http, body, signed(at=time.time() - 3600))
        assert status == 401 and "stale" in text
        q = signed()
        assert (await post(app, http, push(sender, text="one"), q))[0] == 200
        status, text = await post(app, http, push(sender, text="forged"), q)  # same query
        assert status == 401 and "replayed" in text
        status, text = await post(app, http, b"<xml><ToUserName>x</ToUserName></xml>")
        assert status == 400 and "not JSON" in text
        status, text = await post(app, http, {**body, "sender_id": "robert'); --"})
        assert status == 400 and "sender_id" in text
        status, text = await post(app, http, push(sender, text="  "))
        assert status == 400 and "without text" in text
        status, _ = await post(app, http, b"{" + b" " * 70_000 + b"}")
        assert status == 413
    assert [m.text for m in await of_sender(app, sender)] == ["one"]


async def test_replies_through_the_reply_api(app: App, fake: tuple[FakeWeibo, str]) -> None:
    wb = fake[0]
    await app.services.outbound.send("weibo", "2489518277", "您好,已经发货")
    sent = await asyncio.wait_for(wb.sent.get(), 5)
    assert sent["receiver_id"] == "2489518277" and sent["type"] == "text"
    assert sent["data"] == {"text": "您好,已经发货"}
    await app.services.outbound.send("weibo", "2489518277", "长" * 450)  # two messages
    parts = [(await asyncio.wait_for(wb.sent.get(), 5))["data"]["text"] for _ in range(2)]
    assert parts == ["长" * 300, "长" * 150]
    with pytest.raises(DeliveryFailed, match="20016"):
        await app.services.outbound.send("weibo", "404", "late")
    with pytest.raises(DeliveryFailed, match="not a Weibo uid"):
        await app.services.outbound.send("weibo", "someone", "x")


async def test_agent_takes_the_message_and_replies_on_weibo(
        tmp_path: Path, fake: tuple[FakeWeibo, str]) -> None:
    sender = 2489518279000 + uuid.uuid4().int % 1000
    async with weibo_app(tmp_path, fake[1]) as app, aiohttp.ClientSession() as http:
        agent = await platform_agent(app, http, "weibo")
        assert await post(app, http, push(sender, text="能退款吗")) == (200, "")
        [msg] = await of_sender(app, sender)
        offer = await agent.next("offer")
        assert offer["offer"]["contact_id"] == msg.contact_id
        await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
        await agent.call("POST", f"/api/v1/contacts/{msg.contact_id}/messages",
                         {"text": "可以,请稍等"}, expect=201)
        sent = await asyncio.wait_for(fake[0].sent.get(), 5)
        assert sent["receiver_id"] == str(sender) and sent["data"]["text"] == "可以,请稍等"
        assert await post(app, http, push(sender, text="谢谢")) == (200, "")
        pushed = await agent.next("message")
        assert pushed["contact"] == msg.contact_id and pushed["message"]["text"] == "谢谢"
        await agent.state("offline")
        await agent.close()


FIELDS = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["text", "image", "voice", "position", "event", "mention"])
    | st.text(max_size=8),
    "sender_id": st.integers() | st.text(max_size=12) | st.none() | st.just(2489518277),
    "receiver_id": st.integers() | st.text(max_size=5),
    "created_at": st.text(max_size=30) | st.integers(),
    "text": st.text(max_size=60) | st.integers() | st.none(),
    "data": st.dictionaries(st.sampled_from(["subtype", "key", "vfid", "latitude"]),
                            st.text(max_size=10) | st.integers(), max_size=3)
    | st.text(max_size=10) | st.lists(st.integers(), max_size=2)})
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=FIELDS | st.binary(max_size=100), good=st.booleans(),
       query=st.dictionaries(st.sampled_from(["timestamp", "nonce", "signature", "echostr"]),
                             st.text(max_size=20), max_size=4))
async def test_fuzzed_pushes_never_5xx(app: App, body: Any, good: bool,
                                       query: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as http:
        status, text = await post(app, http, body, signed() if good else query)
    assert status < 500, text
    if status >= 400:
        assert json.loads(text)["message"], text
    else:
        assert good  # nothing unsigned gets in
