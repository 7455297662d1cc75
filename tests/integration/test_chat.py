"""Web chat over real websockets: pre-chat form, routing to an agent, typing, replies,
reconnect and resume without loss or duplicates, uploads, offline messages, CSAT, and
bad input refused with a reason."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from ctl.store.models import Contact, ContactEvent
from tests.integration.agent_api import Panel
from tests.integration.channels_app import App, add_agent, channel_settings, database, running
from tests.integration.chat_client import ChatVisitor


@pytest.fixture(scope="module", params=["sqlite", "pg"])
async def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("chat")
    async with database(request.param, data_dir) as url, running(channel_settings(
            data_dir, url, max_attachment_bytes=1000, rate_burst=100,
            chat={"max_frame_bytes": 4096})) as a:
        yield a



@pytest.fixture
async def agent(app: App, http: aiohttp.ClientSession) -> AsyncIterator[Panel]:
    user = f"c{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user, queues=("general",))
    panel = await Panel(app.base, http).login(user, password)
    await panel.listen()
    await panel.state("available")
    yield panel
    await panel.state("offline")
    await panel.close()


async def chat_with(app: App, http: aiohttp.ClientSession, agent: Panel,
                    text: str = "hello") -> tuple[ChatVisitor, str]:
    """A visitor whose first message was accepted by `agent`: (visitor, contact id)."""
    v = ChatVisitor(app.base, http)
    welcome = await v.connect()
    assert welcome == {"type": "welcome", "online": True, "need": "form"}
    await v.start(name="Zhang Wei", email=f"z{uuid.uuid4().hex[:6]}@example.cn")
    await v.say(text, "c1")
    offer = await agent.next("offer")
    await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
    await v.next("state", state="assigned")
    assert v.contact == offer["offer"]["contact_id"]
    return v, v.contact


async def test_chat_with_an_agent(app: App, http: aiohttp.ClientSession, agent: Panel) -> None:
    v = ChatVisitor(app.base, http)
    await v.connect()
    await v.start(name="Zhang Wei", phone="+8613800138000")
    ack = await v.say("我的订单在哪里\uff1f", "c1")
    assert ack["seq"] == 1
    waiting = await v.next("state")
    assert waiting["state"] == "queued"
    offer = await agent.next("offer")
    assert offer["offer"]["channel"] == "chat"
    await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
    joined = await v.next("state", state="assigned")
    assert joined["agent"] and joined["agent"] != agent.agent_id  # the name, not the id
    contact = joined["contact"]
    listed = await agent.call("GET", f"/api/v1/contacts/{contact}/messages")
    assert [m["text"] for m in listed["messages"]] == ["我的订单在哪里\uff1f"]
    # Typing both ways.
    await agent.call("POST", f"/api/v1/contacts/{contact}/typing", {"on": True})
    assert (await v.next("typing"))["on"] is True
    await v.send({"type": "typing", "on": True})
    assert (await agent.next("typing", contact=contact))["on"] is True
    # The agent's reply reaches the visitor with the next seq; the visitor's next
    # message reaches the agent.
    await agent.call("POST", f"/api/v1/contacts/{contact}/messages", {"text": "马上查"},
                     expect=201)
    reply = await v.next("message", seq=2)
    assert (reply["from"], reply["text"]) == ("agent", "马上查")
    await v.say("谢谢", "c2")
    assert (await agent.next("message", contact=contact))["message"]["text"] == "谢谢"
    assert [s for _, s, _ in v.seen] == [1, 2, 3]
    await v.drop()


async def test_resume_loses_nothing_and_repeats_nothing(app: App, http: aiohttp.ClientSession,
                                                       agent: Panel) -> None:
    v, contact = await chat_with(app, http, agent)
    await v.drop()
    for text in ("first while away", "second while away"):
        await agent.call("POST", f"/api/v1/contacts/{contact}/messages", {"text": text},
                         expect=201)
    assert v.last == 1
    session = await v.connect()
    assert session["type"] == "session"
    await v.next("message", seq=3)
    # A message the visitor sent but whose ack it never saw is sent again: stored once.
    again = await v.say("hello", "c1")
    assert again["seq"] == 1
    await v.say("are you there?", "c2")
    assert [(s, t) for _, s, t in v.seen] == [
        (1, "hello"), (2, "first while away"), (3, "second while away"), (4, "are you there?")]
    await v.drop()


async def test_random_drops_never_lose_or_repeat(app: App, http: aiohttp.ClientSession,
                                                 agent: Panel) -> None:
    """Agent replies and visitor messages interleaved with drops and resumes at random:
    the visitor ends with every message once, in seq order."""
    v, contact = await chat_with(app, http, agent)
    rnd = random.Random(7)
    sent = 1
    for i in range(30):
        action = rnd.random()
        if action < 0.4:
            await agent.call("POST", f"/api/v1/contacts/{contact}/messages",
                             {"text": f"a{i}"}, expect=201)
            sent += 1
        elif action < 0.7 and not v.closed.is_set():
            await v.say(f"v{i}", f"c-{i}")
            sent += 1
        elif not v.closed.is_set():
            await v.drop()
        else:
            await v.connect()
    if v.closed.is_set():
        await v.connect()
    await v.next("message", seq=sent) if v.last < sent else None
    seqs = [s for c, s, _ in v.seen if c == contact]
    assert seqs == list(range(1, sent + 1))
    await v.drop()


async def test_upload_limits(app: App, http: aiohttp.ClientSession, agent: Panel) -> None:
    v, contact = await chat_with(app, http, agent)
    headers = {"X-Chat-Token": v.token or "", "Content-Type": "image/png"}
    url = f"{app.base}/chat/upload?cid=u1&name=shot.png"
    async with http.post(url, data=b"\x89PNG" + b"0" * 50, headers=headers) as r:
        assert r.status == 201
    shown = await v.next("message", seq=2)
    assert shown["attachments"] == ["shot.png"]
    pushed = await agent.next("message", contact=contact)
    assert pushed["message"]["attachments"][0]["size"] == 54
    async with http.post(url.replace("u1", "u2"), data=b"0" * 1001, headers=headers) as r:
        assert r.status == 413 and "limit" in (await r.json())["message"]
    bad = {**headers, "Content-Type": "application/x-sh"}
    async with http.post(url.replace("u1", "u3"), data=b"#!/bin/sh", headers=bad) as r:
        assert r.status == 422 and "application/x-sh" in (await r.json())["message"]
    async with http.post(url.replace("u1", "u4"), data=b"x", headers={
            "X-Chat-Token": "forged.token", "Content-Type": "image/png"}) as r:
        assert r.status == 401
    await v.drop()


async def test_close_and_csat(app: App, http: aiohttp.ClientSession, agent: Panel) -> None:
    v, contact = await chat_with(app, http, agent)
    await v.send({"type": "csat", "score": 5})
    assert "not over" in (await v.next("error"))["message"]
    await agent.call("POST", f"/api/v1/contacts/{contact}/complete")
    await v.next("state", state="closed")
    await v.next("csat_request", contact=contact)
    await v.send({"type": "csat", "score": 6})
    assert "1 to 5" in (await v.next("error"))["message"]
    await v.send({"type": "csat", "score": 4, "comment": "快"})
    await v.next("csat_thanks")
    await v.send({"type": "csat", "score": 5})
    assert "already" in (await v.next("error"))["message"]
    async with app.services.db.session(readonly=True) as s:
        rows = list(await s.scalars(select(ContactEvent).where(
            ContactEvent.contact_id == contact, ContactEvent.kind == "csat")))
    assert [r.data for r in rows] == [{"score": 4, "comment": "快"}]
    # Writing again after the close starts a new chat (a new contact).
    await v.say("one more thing", "c9")
    assert v.contact != contact
    await v.drop()


async def test_visitor_leaves_while_waiting(app: App, http: aiohttp.ClientSession,
                                           agent: Panel) -> None:
    await agent.state("away", "lunch")
    v = ChatVisitor(app.base, http)
    await v.connect()
    await v.start(name="Li", email="li-leave@example.cn")
    await v.say("hi", "c1")
    await v.send({"type": "leave"})
    await v.next("state", state="closed", reason="customer_left")
    async with app.services.db.session(readonly=True) as s:
        row = await s.get(Contact, v.contact)
    assert row is not None and (row.state, row.close_reason) == ("abandoned", "customer_left")
    await v.drop()


async def test_offline_leaves_a_message(app: App, http: aiohttp.ClientSession) -> None:
    v = ChatVisitor(app.base, http)
    welcome = await v.connect()
    assert welcome["online"] is False  # nobody staffs the chat queue
    await v.send({"type": "offline", "email": "nope"})
    assert "email" in (await v.next("error"))["message"]
    await v.send({"type": "offline", "name": "Chen", "email": "chen@example.cn",
                  "text": "please call me back"})
    left = await v.next("left_message")
    async with app.services.db.session(readonly=True) as s:
        row = await s.get(Contact, left["contact"])
    assert row is not None and row.channel == "email" and row.state == "queued"
    async with http.post(f"{app.base}/chat/offline", json={"email": "x"}) as r:
        assert r.status == 400
    async with http.get(f"{app.base}/chat/status") as r:
        assert (await r.json()) == {"online": False}


async def test_bad_input_is_refused_with_a_reason(app: App, http: aiohttp.ClientSession
                                                  ) -> None:
    v = ChatVisitor(app.base, http)
    await v.connect(token="forged.token")
    assert (await v.next("error"))["error"] == "unauthorized"
    await v.send({"type": "start", "name": "", "email": "a@b.c"})
    assert "name" in (await v.next("error"))["message"]
    await v.send({"type": "start", "name": "A", "email": "not-an-email"})
    assert "not-an-email" in (await v.next("error"))["message"]
    await v.start(name="A", email="a-bad@example.org")
    assert v.ws is not None
    await v.ws.send_str("not json")
    assert "JSON object" in (await v.next("error"))["message"]
    await v.send({"type": "message", "text": "no cid"})
    assert "cid" in (await v.next("error"))["message"]
    await v.send({"type": "dance"})
    assert "dance" in (await v.next("error"))["message"]
    await v.ws.send_str("x" * 5000)  # over max_frame_bytes: the socket is closed
    await asyncio.wait_for(v.closed.wait(), 5)
    assert v.ws.close_code == 1009
    async with http.get(f"{app.base}/chat/widget.js") as r:
        assert r.status == 200 and "ctlChat" in await r.text()
