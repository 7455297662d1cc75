"""WeChat Official Account end to end: the callback signed (and AES-encrypted) as WeChat
documents it, built here independently of the adapter, and replies through a local fake
of WeChat's token and customer-service message API."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from adapters.wechat.api import WechatApi
from ctl.channels.contract import ChannelError, DeliveryFailed, Outgoing
from ctl.channels.settings import WechatSettings
from ctl.store.models import Identity, Message
from tests.integration.channels_app import (
    App,
    fake_platform,
    platform_agent,
    platform_app,
    shared_lives,
)

TOKEN, APP_ID, SECRET = "pamtest", "wxb11529c136998cb6", "app-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # WeChat's sample EncodingAESKey


def sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def wechat_encrypt(xml: str, app_id: str = APP_ID) -> str:
    key = base64.b64decode(AES_KEY + "=")
    msg = xml.encode()
    plain = os.urandom(16) + struct.pack("!I", len(msg)) + msg + app_id.encode()
    pad = 32 - len(plain) % 32
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain + bytes([pad] * pad)) + enc.finalize()).decode()


def text_xml(openid: str, content: str, msg_id: str) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
            f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]>"
            f"</MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")


def signed(at: float | None = None, token: str = TOKEN) -> dict[str, str]:
    ts, nonce = str(int(at if at is not None else time.time())), uuid.uuid4().hex[:10]
    return {"timestamp": ts, "nonce": nonce, "signature": sha1(token, ts, nonce)}


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8 + b"\xff\xd9"
AMR = b"#!AMR\n" + bytes(range(256)) * 4
LIMIT = 200_000  # channels.max_attachment_bytes in these tests


class FakeWechat:
    """/cgi-bin/token, /cgi-bin/message/custom/send and /cgi-bin/media/get as WeChat
    documents them."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.valid: set[str] = set()
        self.fetches = 0

    async def token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("grant_type") != "client_credential" or q.get("appid") != APP_ID:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if q.get("secret") != SECRET:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        self.fetches += 1
        token = f"tok-{uuid.uuid4().hex}"
        self.valid.add(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") not in self.valid:
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        body = await request.json()
        if body.get("touser") == "o-unfollowed":
            return web.json_response({"errcode": 45015, "errmsg": "response out of time limit"})
        self.sent.put_nowait(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})


    async def media(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") not in self.valid:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        media_id = request.query.get("media_id", "")
        if media_id.startswith("m-img"):
            return web.Response(body=JPEG, content_type="image/jpeg", headers={
                "Content-Disposition": 'attachment; filename="photo.jpg"'})
        if media_id == "m-voice":
            return web.Response(body=AMR, content_type="audio/amr")
        if media_id == "m-big":
            return web.Response(body=b"\0" * (LIMIT + 1), content_type="image/jpeg")
        # WeChat labels its JSON errors text/plain here.
        return web.Response(text='{"errcode":40007,"errmsg":"invalid media_id"}',
                            content_type="text/plain")


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[tuple[FakeWechat, int]]:
    wx = FakeWechat()
    app = web.Application()
    app.router.add_get("/cgi-bin/token", wx.token)
    app.router.add_post("/cgi-bin/message/custom/send", wx.send)
    app.router.add_get("/cgi-bin/media/get", wx.media)
    async with fake_platform(app) as base:
        yield wx, int(base.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def wechat_app(data_dir: Path, port: int) -> AsyncIterator[App]:
    wechat = {"token": TOKEN, "app_id": APP_ID, "app_secret": SECRET,
              "encoding_aes_key": AES_KEY, "api_base": f"http://127.0.0.1:{port}"}
    async with platform_app(data_dir, wechat=wechat, max_attachment_bytes=LIMIT) as a:
        yield a


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory, fake: tuple[FakeWechat, int]
              ) -> AsyncIterator[App]:
    async with wechat_app(tmp_path_factory.mktemp("wechat"), fake[1]) as a:
        yield a


async def post(app: App, http: aiohttp.ClientSession, xml: str | bytes,
               query: dict[str, str] | None = None) -> tuple[int, str]:
    body = xml.encode() if isinstance(xml, str) else xml
    async with http.post(f"{app.base}/channels/wechat", params=query or signed(),
                         data=body) as r:
        return r.status, await r.text()


async def stored(app: App, external_id: str) -> list[Message]:
    async with app.services.db.session(readonly=True) as s:
        return list((await s.scalars(select(Message).where(
            Message.external_id == external_id))).all())


async def test_url_verification(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        q = {**signed(), "echostr": "echo-4711"}
        async with http.get(f"{app.base}/channels/wechat", params=q) as r:
            assert r.status == 200 and await r.text() == "echo-4711"
        bad = {**signed(token="other"), "echostr": "x"}
        async with http.get(f"{app.base}/channels/wechat", params=bad) as r:
            assert r.status == 401 and "does not match" in (await r.json())["message"]
        async with http.get(f"{app.base}/channels/wechat", params={"echostr": "x"}) as r:
            assert r.status == 401 and "missing" in (await r.json())["message"]


async def test_plaintext_messages_stored_once(app: App) -> None:
    openid = f"o{uuid.uuid4().hex[:20]}"
    async with aiohttp.ClientSession() as http:
        status, text = await post(app, http, text_xml(openid, "我的订单在哪里", "61000001"))
        assert (status, text) == (200, "success")
        status, text = await post(app, http, text_xml(openid, "我的订单在哪里", "61000001"))
        assert (status, text) == (200, "success")  # WeChat's retry: the same MsgId
        [msg] = await stored(app, "wechat:61000001")
        assert msg.text == "我的订单在哪里" and msg.channel == "wechat" and msg.address == openid
        image = (f"<xml><ToUserName>gh_test</ToUserName><FromUserName>{openid}</FromUserName>"
                 "<CreateTime>1</CreateTime><MsgType>image</MsgType>"
                 "<PicUrl>http://mmbiz/pic.jpg</PicUrl><MediaId>m-1</MediaId>"
                 "<MsgId>61000002</MsgId></xml>")
        assert (await post(app, http, image))[0] == 200
        [img] = await stored(app, "wechat:61000002")
        assert "pic.jpg" in img.text and img.contact_id == msg.contact_id
        voice = (f"<xml><FromUserName>{openid}</FromUserName><CreateTime>2</CreateTime>"
                 "<MsgType>voice</MsgType><MediaId>m-2</MediaId><Format>amr</Format>"
                 "<Recognition>退货</Recognition><MsgId>61000003</MsgId></xml>")
        assert (await post(app, http, voice))[0] == 200
        assert "退货" in (await stored(app, "wechat:61000003"))[0].text
        event = (f"<xml><FromUserName>{openid}</FromUserName><CreateTime>77</CreateTime>"
                 "<MsgType>event</MsgType><Event>subscribe</Event></xml>")
        for _ in range(2):
            assert await post(app, http, event) == (200, "success")
        assert len(await stored(app, f"wechat:{openid}:77:subscribe")) == 1
    async with app.services.db.session(readonly=True) as s:
        ids = await s.scalar(select(func.count()).select_from(Identity).where(
            Identity.kind == "wechat_openid", Identity.value == openid))
    assert ids == 1


def media_xml(openid: str, kind: str, media_id: str, msg_id: str) -> str:
    return (f"<xml><ToUserName>gh_test</ToUserName><FromUserName>{openid}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{kind}</MsgType>"
            f"<PicUrl>http://mmbiz/x.jpg</PicUrl><MediaId>{media_id}</MediaId>"
            f"<Format>amr</Format><MsgId>{msg_id}</MsgId></xml>")


async def test_image_and_voice_fetched_into_attachments(app: App, fake: tuple[FakeWechat, int]
                                                        ) -> None:
    openid, store = f"o{uuid.uuid4().hex[:20]}", app.services.channels.attachments
    async with aiohttp.ClientSession() as http:
        for kind, media_id, msg_id in (("image", "m-img", "65000001"),
                                       ("voice", "m-voice", "65000002"),
                                       ("image", "m-gone", "65000003"),
                                       ("image", "m-big", "65000004")):
            assert await post(app, http, media_xml(openid, kind, media_id, msg_id)) == \
                (200, "success")
        fake[0].valid.clear()  # WeChat expired the token: fetched again once, then the file
        assert await post(app, http, media_xml(openid, "image", "m-img2", "65000005")) == \
            (200, "success")
    [img], [voice], [gone], [big], [again] = [
        await stored(app, f"wechat:6500000{i}") for i in range(1, 6)]
    assert [(a["name"], a["type"], a["size"]) for a in img.attachments] == \
        [("photo.jpg", "image/jpeg", len(JPEG))]
    assert store.path(img.attachments[0]["sha256"]).read_bytes() == JPEG
    assert [(a["name"], a["type"]) for a in voice.attachments] == [("m-voice.amr", "audio/amr")]
    assert store.path(voice.attachments[0]["sha256"]).read_bytes() == AMR
    # Never lost for its media: kept with the reason.
    assert gone.attachments == [] and "40007" in gone.meta["media_error"]
    assert big.attachments == [] and "limit" in big.meta["media_error"]
    assert again.attachments[0]["sha256"] == img.attachments[0]["sha256"]


async def test_safe_mode_encrypted(app: App) -> None:
    openid = f"o{uuid.uuid4().hex[:20]}"
    encrypt = wechat_encrypt(text_xml(openid, "加密的消息", "62000001"))
    body = f"<xml><ToUserName>gh_test</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    q = signed()
    good = {**q, "encrypt_type": "aes",
            "msg_signature": sha1(TOKEN, q["timestamp"], q["nonce"], encrypt)}
    async with aiohttp.ClientSession() as http:
        assert await post(app, http, body, good) == (200, "success")
        [msg] = await stored(app, "wechat:62000001")
        assert msg.text == "加密的消息" and msg.address == openid
        status, text = await post(app, http, body, {**good, "msg_signature": "0" * 40})
        assert status == 401 and "msg_signature" in text
        other = wechat_encrypt(text_xml(openid, "x", "62000002"), app_id="wx-someone-else")
        forged = {**good, "msg_signature": sha1(TOKEN, q["timestamp"], q["nonce"], other)}
        status, text = await post(app, http, body.replace(encrypt, other), forged)
        assert status == 401 and "another app id" in text
        junk = base64.b64encode(os.urandom(64)).decode()
        junked = {**good, "msg_signature": sha1(TOKEN, q["timestamp"], q["nonce"], junk)}
        status, text = await post(app, http, body.replace(encrypt, junk), junked)
        assert status == 401 and "EncodingAESKey" in text
    assert await stored(app, "wechat:62000002") == []


async def test_bad_callbacks_refused_never_5xx(app: App) -> None:
    xml = text_xml("o-bad", "hi", "63000001")
    async with aiohttp.ClientSession() as http:
        status, text = await post(app, http, xml, signed(token="wrong"))
        assert status == 401 and "does not match" in text
        status, text = await post(app, http, xml, signed(at=time.time() - 3600))
        assert status == 401 and "stale" in text
        status, text = await post(app, http, b"<xml><FromUserName>x</FromUserName", signed())
        assert status == 400 and "not XML" in text
        bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml>&a;</xml>'
        status, text = await post(app, http, bomb)
        assert status == 400 and "DTD" in text
        status, text = await post(app, http, "<xml><MsgType>text</MsgType></xml>")
        assert status == 400 and "FromUserName" in text
        status, _ = await post(app, http, b"<xml>" + b"a" * 70_000 + b"</xml>")
        assert status == 413
        menu = ("<xml><FromUserName>o-menu</FromUserName><CreateTime>1</CreateTime>"
                "<MsgType>event</MsgType><Event>VIEW</Event></xml>")
        assert await post(app, http, menu) == (200, "success")
    assert await stored(app, "wechat:63000001") == []


async def test_replies_through_customer_service_api(app: App, fake: tuple[FakeWechat, int]
                                                    ) -> None:
    wx = fake[0]
    out = app.services.outbound
    await out.send("wechat", "o-reply-1", "您好已发货")
    assert await asyncio.wait_for(wx.sent.get(), 5) == {
        "touser": "o-reply-1", "msgtype": "text", "text": {"content": "您好已发货"}}
    fetches = wx.fetches
    await out.send("wechat", "o-reply-1", "second")  # the cached token
    await asyncio.wait_for(wx.sent.get(), 5)
    assert wx.fetches == fetches
    wx.valid.clear()  # WeChat expired the token early: 42001, one refresh, then sent
    await out.send("wechat", "o-reply-1", "third")
    assert (await asyncio.wait_for(wx.sent.get(), 5))["text"]["content"] == "third"
    assert wx.fetches == fetches + 1
    with pytest.raises(DeliveryFailed, match="45015"):
        await out.send("wechat", "o-unfollowed", "late")


async def test_agent_takes_the_chat_and_replies_on_wechat(tmp_path: Path,
                                                          fake: tuple[FakeWechat, int]) -> None:
    async with wechat_app(tmp_path, fake[1]) as app:  # its own queue: no earlier contacts
        await _agent_replies(app, fake[0])


async def _agent_replies(app: App, wx: FakeWechat) -> None:
    openid = f"o{uuid.uuid4().hex[:20]}"
    async with aiohttp.ClientSession() as http:
        agent = await platform_agent(app, http, "wechat")
        assert await post(app, http, text_xml(openid, "能退款吗", "64000001")) == (200, "success")
        [msg] = await stored(app, "wechat:64000001")
        offer = await agent.next("offer")
        assert offer["offer"]["contact_id"] == msg.contact_id
        await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
        await agent.call("POST", f"/api/v1/contacts/{msg.contact_id}/messages",
                         {"text": "可以请稍等"}, expect=201)
        sent = await asyncio.wait_for(wx.sent.get(), 5)
        assert sent["touser"] == openid and sent["text"]["content"] == "可以请稍等"
        assert await post(app, http, text_xml(openid, "谢谢", "64000002")) == (200, "success")
        pushed = await agent.next("message")
        assert pushed["contact"] == msg.contact_id
        await agent.state("offline")
        await agent.close()


async def test_token_cached_until_shortly_before_expiry(fake: tuple[FakeWechat, int]) -> None:
    now = [1000.0]
    api = WechatApi(WechatSettings(token="t", app_id=APP_ID, app_secret=SECRET,  # type: ignore[call-arg]
                                   api_base=f"http://127.0.0.1:{fake[1]}", token_margin=300),
                    clock=lambda: now[0])
    try:
        await asyncio.gather(*(api.send(Outgoing(f"m{i}", "wechat", "o-t", "x"))
                               for i in range(3)))
        assert api.token_fetches == 1  # concurrent sends share one token request
        now[0] += 7200 - 301
        await api.send(Outgoing("m4", "wechat", "o-t", "x"))
        assert api.token_fetches == 1
        now[0] += 2  # within the margin: fetched again before WeChat expires it
        await api.send(Outgoing("m5", "wechat", "o-t", "x"))
        assert api.token_fetches == 2
    finally:
        await api.close()
        while not fake[0].sent.empty():
            fake[0].sent.get_nowait()
    bad = WechatApi(WechatSettings(app_id=APP_ID, app_secret="wrong",  # type: ignore[call-arg]
                                   api_base=f"http://127.0.0.1:{fake[1]}"))
    try:
        with pytest.raises(ChannelError, match="token failed: errcode 40001"):
            await bad.send(Outgoing("m6", "wechat", "o-t", "x"))
    finally:
        await bad.close()


@pytest.mark.pg
async def test_token_shared_by_controllers_and_restarts(fake: tuple[FakeWechat, int]) -> None:
    """One controller fetches the token; another, and the next start, reuse it (Redis);
    when WeChat revokes it, one fetch serves them all again."""
    conf = WechatSettings(token="t", app_id=APP_ID, app_secret=SECRET,  # type: ignore[call-arg]
                          api_base=f"http://127.0.0.1:{fake[1]}")
    async with shared_lives(3) as lives:
        apis = [WechatApi(conf, live=lives[0]), WechatApi(conf, live=lives[1])]
        try:
            for i, api in enumerate(apis):
                await api.send(Outgoing(f"s{i}", "wechat", "o-t", "x"))
            assert [a.token_fetches for a in apis] == [1, 0]
            fake[0].valid.clear()  # revoked: the first to hear of it fetches; the other reuses
            for i, api in enumerate(apis):
                await api.send(Outgoing(f"r{i}", "wechat", "o-t", "x"))
            assert [a.token_fetches for a in apis] == [2, 0]
            apis.append(WechatApi(conf, live=lives[2]))  # a restart
            await apis[-1].send(Outgoing("n", "wechat", "o-t", "x"))
            assert apis[-1].token_fetches == 0
        finally:
            for api in apis:
                await api.close()
        while not fake[0].sent.empty():
            fake[0].sent.get_nowait()


FIELDS = st.fixed_dictionaries({}, optional={
    "FromUserName": st.text(max_size=30) | st.just("o-fuzz"),
    "MsgType": st.sampled_from(["text", "image", "voice", "event", "video", ""])
    | st.text(max_size=8),
    "Content": st.text(max_size=60), "MsgId": st.text(max_size=20) | st.integers().map(str),
    "Event": st.sampled_from(["subscribe", "unsubscribe", "CLICK"]) | st.text(max_size=8),
    "CreateTime": st.integers().map(str), "Recognition": st.text(max_size=20)})


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=FIELDS, encrypted=st.booleans())
async def test_fuzzed_callbacks_never_5xx(app: App, fields: dict[str, str], encrypted: bool
                                          ) -> None:
    xml = "<xml>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items()) + "</xml>"
    q = signed()
    if encrypted:
        enc = wechat_encrypt(xml)
        xml = f"<xml><Encrypt>{enc}</Encrypt></xml>"
        q |= {"encrypt_type": "aes", "msg_signature": sha1(TOKEN, q["timestamp"], q["nonce"], enc)}
    async with aiohttp.ClientSession() as http:
        status, text = await post(app, http, xml, q)
    assert status < 500, text
    assert status == 200 or "message" in text
