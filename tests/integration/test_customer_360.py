"""The customer 360 API on SQLite and PostgreSQL: a customer's chat, email and call (IVR
path, recording, transcript) in one timeline, paged by cursor; tags; search; merge and
unmerge with their audit trail; recordings served with HTTP Range; the CRM hook's
answers, errors and timeout. A real app, real routing, a real HTTP server as the CRM."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ctl.channels.contract import Inbound
from ctl.customers.crm import CrmSettings
from ctl.customers.timeline import MESSAGES_PER_CONTACT, TEXT_CHARS
from tests.integration.agent_api import Panel
from tests.integration.channels_app import App, add_agent, channel_settings, database, running
from tests.integration.customer_data import call, contacts, phone, tone

CRM_TIMEOUT = 0.5


class FakeCrm:
    """The company's CRM as a real HTTP server: answers by phone; one phone never answers."""

    def __init__(self) -> None:
        self.never = asyncio.Event()  # never set: the slow CRM's request waits on it
        self.asked: list[str] = []

    async def customers(self, request: web.Request) -> web.Response:
        phone = request.query["phone"]
        self.asked.append(phone)
        if phone.endswith("9999"):
            await self.never.wait()
        if phone.endswith("5000"):
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response({"orders": [{"number": "A1", "status": "shipped"}],
                                  "auth": request.headers.get("X-Key")})


@pytest.fixture(scope="module")
async def crm() -> AsyncIterator[tuple[FakeCrm, str]]:
    fake = FakeCrm()
    app = web.Application()
    app.router.add_get("/customers", fake.customers)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield fake, f"http://127.0.0.1:{server.port}/customers?phone={{phone}}"
    await server.close()


@pytest.fixture(scope="module", params=["sqlite", "pg"])
async def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              crm: tuple[FakeCrm, str]) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("c360")
    async with database(request.param, data_dir) as url:
        settings = channel_settings(data_dir, url).model_copy(update={"crm": CrmSettings(
            url=crm[1], timeout=CRM_TIMEOUT, headers={"X-Key": "k1"})})
        async with running(settings) as a:
            yield a



async def login(app: App, http: aiohttp.ClientSession, role: str = "agent") -> Panel:
    user = f"c{uuid.uuid4().hex[:8]}"
    panel = await Panel(app.base, http).login(user, await add_agent(app.services, user, role))
    USERS[panel.agent_id] = user
    return panel


USERS: dict[str, str] = {}  # agent id -> username


async def test_the_360_shows_every_channel(app: App, http: aiohttp.ClientSession) -> None:
    agent = await login(app, http)
    number = phone()
    chat = await app.services.channels.receive(Inbound(
        channel="chat", identity=("phone", number), address=f"s-{uuid.uuid4().hex}",
        text="my router keeps rebooting", name="Liu Yang", thread=uuid.uuid4().hex,
        external_id=uuid.uuid4().hex))
    customer = chat.customer_id
    name = f"{uuid.uuid4().hex}.wav"
    tone(app.settings.recordings_dir / name)
    call_id = await call(app, customer, name)
    t = await agent.call("POST", "/api/v1/tickets", {
        "subject": "Router reboots", "customer": {"kind": "phone", "value": number}},
        expect=201)

    got = await agent.call("GET", f"/api/v1/customers/{customer}")
    assert (got["name"], got["merged_into"], got["crm"]) == ("Liu Yang", None,
                                                             {"configured": True})
    assert [(i["kind"], i["value"]) for i in got["identities"]] == [("phone", number)]
    assert got["channels"] == ["chat", "voice"]
    assert [(x["number"], x["status"]) for x in got["tickets"]] == [(t["number"], "new")]

    page = await agent.call("GET", f"/api/v1/customers/{customer}/timeline")
    kinds = [(e["kind"], e["channel"] if e["kind"] == "contact" else e["number"])
             for e in page["entries"]]
    assert kinds == [("ticket", t["number"]), ("contact", "voice"), ("contact", "chat")]
    assert page["next"] is None
    voice, text = page["entries"][1], page["entries"][2]
    assert voice["id"] == call_id and voice["state"] == "closed"
    assert [(s["step"], s.get("outcome"), s.get("keys")) for s in voice["ivr"]] == \
        [("menu", "2", "2"), ("refunds", None, None)]
    assert [(r["name"], r["kind"]) for r in voice["recordings"]] == [(name, "call")]
    assert voice["transcripts"][0]["text"] == "i would like a refund for my order"
    assert voice["seconds"] is not None and voice["seconds"] >= 0
    assert text["id"] == chat.contact_id and text["messages_total"] == 1
    assert text["messages"][0]["text"] == "my router keeps rebooting"
    assert not text["messages"][0]["truncated"]

    # The recording plays in a browser: whole, and by ranges (seeking).
    url = app.base + voice["recordings"][0]["url"]
    auth = {"Authorization": f"Bearer {agent.token}"}
    raw = (app.settings.recordings_dir / name).read_bytes()
    async with http.get(url, headers=auth) as r:
        assert (r.status, r.headers["Content-Type"]) == (200, "audio/wav")
        assert await r.read() == raw
    async with http.get(url, headers={**auth, "Range": "bytes=1000-1999"}) as r:
        assert r.status == 206
        assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(raw)}"
        assert await r.read() == raw[1000:2000]
    async with http.get(url) as r:
        assert r.status == 401
    # Only files the contact's history names, and never outside the recordings folder.
    for bad in (f"{uuid.uuid4().hex}.wav", "..%2F..%2Fctl.db"):
        async with http.get(f"{app.base}/api/v1/contacts/{call_id}/recordings/{bad}",
                            headers=auth) as r:
            assert r.status == 404, bad
    (app.settings.recordings_dir / name).unlink()
    async with http.get(url, headers=auth) as r:
        body = await r.json()
        assert r.status == 404 and "not on this server" in body["message"]


async def test_timeline_pages_by_cursor_without_repeats_or_gaps(
        app: App, http: aiohttp.ClientSession) -> None:
    agent = await login(app, http)
    customer = await app.services.customers.identify("phone", phone(), "Many")
    # 40 contacts, three at each instant (the id breaks the tie), and task contacts,
    # which are tickets' routing and not shown.
    rows = await contacts(app, customer, 40, ("chat", "email", "sms", "task"),
                          timedelta(seconds=1), same=3)
    shown = sorted(((r["created_at"], r["id"]) for r in rows if r["channel"] != "task"),
                   reverse=True)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        q = f"?limit=7&cursor={cursor}" if cursor else "?limit=7"
        page = await agent.call("GET", f"/api/v1/customers/{customer}/timeline{q}")
        seen += [e["id"] for e in page["entries"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [i for _, i in shown]
    bad = await agent.call("GET", f"/api/v1/customers/{customer}/timeline?cursor=nope",
                           expect=400)
    assert "cursor" in bad["message"]
    await agent.call("GET", f"/api/v1/customers/{customer}/timeline?limit=0", expect=400)
    await agent.call("GET", f"/api/v1/customers/{uuid.uuid4().hex}/timeline", expect=404)


async def test_a_thousand_entries_page_fast(app: App, http: aiohttp.ClientSession) -> None:
    agent = await login(app, http)
    customer = await app.services.customers.identify("phone", phone(), "Loyal")
    await contacts(app, customer, 1000)
    started = time.monotonic()
    page = await agent.call("GET", f"/api/v1/customers/{customer}/timeline?limit=50")
    assert len(page["entries"]) == 50 and page["next"]
    assert time.monotonic() - started < 1.0


async def test_a_long_conversation_shows_its_newest_messages_cut_short(
        app: App, http: aiohttp.ClientSession) -> None:
    agent = await login(app, http)
    number, thread = phone(), uuid.uuid4().hex
    for n in range(MESSAGES_PER_CONTACT + 2):
        got = await app.services.channels.receive(Inbound(
            channel="chat", identity=("phone", number), address=f"s{n}", thread=thread,
            text=f"{n} " + "x" * 3000 if n % 2 else f"{n}", external_id=uuid.uuid4().hex))
    [entry] = (await agent.call(
        "GET", f"/api/v1/customers/{got.customer_id}/timeline"))["entries"]
    shown = entry["messages"]
    assert entry["messages_total"] == MESSAGES_PER_CONTACT + 2
    assert [m["text"].split()[0] for m in shown] == \
        [str(n) for n in range(2, MESSAGES_PER_CONTACT + 2)]
    assert [(len(m["text"]), m["truncated"]) for m in shown[:2]] == \
        [(1, False), (TEXT_CHARS, True)]


async def test_tags_are_edited_and_checked(app: App, http: aiohttp.ClientSession) -> None:
    agent = await login(app, http)
    customer = await app.services.customers.identify("email", f"{uuid.uuid4().hex}@x.org")
    path = f"/api/v1/customers/{customer}/tags"
    assert (await agent.call("POST", path, {"tags": ["vip", " late  payer ", "vip"]}))[
        "tags"] == ["late payer", "vip"]
    assert (await agent.call("DELETE", path, {"tags": ["vip", "absent"]}))["tags"] == \
        ["late payer"]
    assert (await agent.call("PUT", path, {"tags": ["新客户", "b2b"]}))["tags"] == \
        ["b2b", "新客户"]
    assert (await agent.call("GET", f"/api/v1/customers/{customer}"))["tags"] == \
        ["b2b", "新客户"]
    for body, words in (({"tags": "vip"}, "tags"), ({"tags": ["x" * 65]}, "1 to 64"),
                        ({"tags": [""]}, "1 to 64"), ({"tags": ["a\u0007b"]}, "printable")):
        err = await agent.call("POST", path, body, expect=400)
        assert words in err["message"], err
    await agent.call("POST", f"/api/v1/customers/{uuid.uuid4().hex}/tags", {"tags": ["x"]},
                     expect=404)


async def test_search_by_name_phone_and_email(app: App, http: aiohttp.ClientSession) -> None:
    agent = await login(app, http)
    number, email = phone(), f"Zhao.{uuid.uuid4().hex[:6]}@Example.com"
    a = await app.services.customers.identify("phone", number, f"Zhao Lei {number[-4:]}")
    b = await app.services.customers.identify("email", email, "王芳")

    async def found(q: str) -> list[str]:
        got = await agent.call("GET", f"/api/v1/customers?q={aiohttp.helpers.quote(q)}")
        return [c["id"] for c in got["customers"]]

    national = f"({number[2:5]}) {number[5:8]}-{number[8:]}"  # how an agent types it
    assert await found(national) == [a]
    assert await found(number[-7:]) == [a]  # part of the number
    assert a in await found(f"zhao lei {number[-4:]}")
    assert await found(email.upper()) == [b]
    assert await found("王芳") and b in await found("王芳")
    assert await found("100%_") == []  # LIKE's wildcards are plain characters
    err = await agent.call("GET", "/api/v1/customers?q=a", expect=400)
    assert "2 characters" in err["message"]


async def test_merge_and_unmerge_with_audit(app: App, http: aiohttp.ClientSession) -> None:
    agent, sup = await login(app, http), await login(app, http, "supervisor")
    number, email = phone(), f"m{uuid.uuid4().hex[:8]}@example.com"
    chat = await app.services.channels.receive(Inbound(
        channel="chat", identity=("phone", number), address="s1", text="hello from chat",
        name="Mei", thread=uuid.uuid4().hex, external_id=uuid.uuid4().hex))
    mail = await app.services.channels.receive(Inbound(
        channel="email", identity=("email", email), address=email, text="hello by mail",
        subject="Refund", name="Mei L", external_id=f"<{uuid.uuid4().hex}@x>"))
    keep, gone = chat.customer_id, mail.customer_id
    assert keep != gone
    await agent.call("PUT", f"/api/v1/customers/{keep}/tags", {"tags": ["vip"]})
    await agent.call("PUT", f"/api/v1/customers/{gone}/tags", {"tags": ["vip", "refund"]})

    denied = await agent.call("POST", f"/api/v1/customers/{keep}/merge", {"from": gone},
                              expect=403)
    assert "supervisor" in denied["message"]
    await sup.call("POST", f"/api/v1/customers/{keep}/merge", {"from": keep}, expect=400)
    done = await sup.call("POST", f"/api/v1/customers/{keep}/merge", {"from": gone},
                          expect=201)
    assert done["moved"] == {"identity": 1, "contact": 1, "message": 1, "ticket": 0,
                             "tag": 1}
    view = await agent.call("GET", f"/api/v1/customers/{keep}")
    assert {i["value"] for i in view["identities"]} == {number, email}
    assert view["tags"] == ["refund", "vip"]
    [audit] = view["merges"]
    assert (audit["merged"]["id"], audit["by"], audit["undone_at"]) == \
        (gone, USERS[sup.agent_id], None)
    page = await agent.call("GET", f"/api/v1/customers/{keep}/timeline")
    assert {e["channel"] for e in page["entries"]} == {"chat", "email"}
    old = await agent.call("GET", f"/api/v1/customers/{gone}")
    assert old["merged_into"] == {"id": keep, "name": "Mei"} and old["identities"] == []
    assert gone not in [c["id"] for c in (await agent.call(
        "GET", f"/api/v1/customers?q={email}"))["customers"]]
    # The same person writing again is the survivor now.
    again = await app.services.channels.receive(Inbound(
        channel="email", identity=("email", email), address=email, text="any news?",
        subject="Refund 2", external_id=f"<{uuid.uuid4().hex}@x>"))
    assert again.customer_id == keep
    await agent.call("POST", f"/api/v1/customers/{gone}/tags", {"tags": ["x"]}, expect=409)
    twice = await sup.call("POST", f"/api/v1/customers/{keep}/merge", {"from": gone},
                           expect=409)
    assert "merged into" in twice["message"]

    await agent.call("POST", f"/api/v1/customers/merges/{done['id']}/undo", expect=403)
    undone = await sup.call("POST", f"/api/v1/customers/merges/{done['id']}/undo")
    assert undone["moved_back"] == done["moved"]
    view = await agent.call("GET", f"/api/v1/customers/{keep}")
    assert [i["value"] for i in view["identities"]] == [number]
    assert view["tags"] == ["vip"] and view["merges"][0]["undone_by"]
    old = await agent.call("GET", f"/api/v1/customers/{gone}")
    assert (old["merged_into"], old["tags"]) == (None, ["refund", "vip"])
    old_page = await agent.call("GET", f"/api/v1/customers/{gone}/timeline")
    assert [e["id"] for e in old_page["entries"]] == [mail.contact_id]
    # What arrived after the merge stays with the survivor.
    page = await agent.call("GET", f"/api/v1/customers/{keep}/timeline")
    assert again.contact_id in [e["id"] for e in page["entries"]]
    await sup.call("POST", f"/api/v1/customers/merges/{done['id']}/undo", expect=409)


async def test_crm_answers_errors_and_timeouts(app: App, http: aiohttp.ClientSession,
                                               crm: tuple[FakeCrm, str]) -> None:
    agent = await login(app, http)

    async def lookup(number: str | None) -> dict[str, Any]:
        if number is None:
            cid = await app.services.customers.identify("email", f"{uuid.uuid4().hex}@x.org")
        else:
            cid = await app.services.customers.identify("phone", number)
        return await agent.call("GET", f"/api/v1/customers/{cid}/crm")

    number = phone()
    ok = await lookup(number)
    assert ok["ok"] and ok["data"] == {"orders": [{"number": "A1", "status": "shipped"}],
                                       "auth": "k1"}
    assert crm[0].asked[-1] == number  # "+" reached the CRM URL-encoded and intact
    failed = await lookup(number[:-4] + "5000")
    assert failed == {"ok": False, "error": "the CRM answered HTTP 500"}
    started = time.monotonic()
    slow = await lookup(number[:-4] + "9999")
    assert slow == {"ok": False, "error": f"the CRM did not answer within {CRM_TIMEOUT:g} s"}
    assert time.monotonic() - started < CRM_TIMEOUT + 1
    assert (await lookup(None)) == {"ok": False, "error": "this customer has no phone"}


async def test_demo_crm(app: App, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{app.base}/demo/crm/customers?phone=%2B15550100") as r:
        first = await r.json()
    async with http.get(f"{app.base}/demo/crm/customers?phone=%2B15550100") as r:
        assert await r.json() == first
    assert first["account"].startswith("A") and isinstance(first["orders"], list)


async def test_profile_changes(app: App, http: aiohttp.ClientSession) -> None:
    agent = await login(app, http)
    customer = await app.services.customers.identify("phone", phone())
    got = await agent.call("PATCH", f"/api/v1/customers/{customer}",
                           {"name": " Chen Jie ", "language": "zh-CN"})
    assert (got["name"], got["language"]) == ("Chen Jie", "zh-CN")
    err = await agent.call("PATCH", f"/api/v1/customers/{customer}", {"tier": "gold"},
                           expect=400)
    assert "tier" in err["message"]


async def test_a_chat_form_with_email_and_phone_is_one_customer(
        app: App, http: aiohttp.ClientSession) -> None:
    """The pre-chat form's phone is linked to the chatting customer, so a later call from
    it (identified as calls are, by the caller's number) is the same customer; and a
    caller who chats later giving a new email joins the caller's record."""
    agent = await login(app, http)
    chat = app.services.chat
    number, email = phone(), f"w{uuid.uuid4().hex[:8]}@example.com"
    visitor, token = chat.start({"name": "Wang Wei", "email": email,
                                 "phone": f"({number[2:5]}) {number[5:8]}-{number[8:]}"})
    assert chat.tokens.read(token) == visitor
    said = await chat.say(visitor, "c1", "where is my parcel?")
    later = await app.services.contacts.open("voice", identity=("phone", number))
    assert later.customer_id == said.customer_id
    got = await agent.call("GET", f"/api/v1/customers/{said.customer_id}")
    assert {(i["kind"], i["value"]) for i in got["identities"]} == \
        {("email", email), ("phone", number)}

    caller = phone()
    first = await app.services.contacts.open("voice", identity=("phone", caller))
    new_email = f"n{uuid.uuid4().hex[:8]}@example.com"
    visitor, _ = chat.start({"name": "Caller", "email": new_email, "phone": caller})
    assert (await chat.say(visitor, "c1", "hi")).customer_id == first.customer_id
    # An identity someone else has stays theirs: merging is a supervisor's decision.
    visitor, _ = chat.start({"name": "X", "email": email, "phone": caller})
    assert (await chat.say(visitor, "c1", "hi")).customer_id == said.customer_id
    got = await agent.call("GET", f"/api/v1/customers/{first.customer_id}")
    assert {i["value"] for i in got["identities"]} == {caller, new_email}
    with pytest.raises(Exception, match="phone: '12' is not a phone number"):
        chat.start({"name": "Y", "email": email, "phone": "12"})
