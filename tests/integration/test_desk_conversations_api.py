"""The agent API the desk's conversation panel uses: the agent's open conversations,
replies with a subject and with attached files (limits enforced by the server, with
errors naming the file), and the wrap-up disposition. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration import channels_app
from tests.integration.agent_api import Panel
from tests.integration.channels_app import App, channel_settings, database, running
from tests.integration.test_channels_contract import Recorder


@pytest.fixture(scope="module", params=["sqlite", "pg"])
async def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("desk-conv")
    async with database(request.param, data_dir) as url:
        settings = channel_settings(data_dir, url, max_attachment_bytes=1000,
                                    attachment_types=["image/*", "application/pdf",
                                                      "text/plain"])
        settings.routing.queues[1].wrapup_seconds = 300.0  # "mail": wrap-up until done
        async with running(settings) as a:
            yield a



async def login(app: App, http: aiohttp.ClientSession, role: str = "agent") -> Panel:
    return await channels_app.login(app, http, role, ("mail",))


async def take(app: App, sup: Panel, agent: Panel, name: str, **extra: Any) -> str:
    """A customer writes on the API channel; `agent` accepts the offer. The contact."""
    email = f"{uuid.uuid4().hex[:6]}@example.org"
    await sup.call("POST", "/api/v1/messages", {
        "channel": "api", "customer": {"kind": "email", "value": email, "name": name},
        "text": f"hello from {name}", "queue": "mail", "thread": uuid.uuid4().hex, **extra},
        expect=201)
    offer = (await agent.next("offer"))["offer"]
    await agent.call("POST", f"/api/v1/offers/{offer['id']}/accept")
    return str(offer["contact_id"])


async def form(agent: Panel, contact: str, data: aiohttp.FormData, expect: int
               ) -> dict[str, Any]:
    async with agent.http.post(f"{agent.base}/api/v1/contacts/{contact}/messages", data=data,
                               headers={"Authorization": f"Bearer {agent.token}"}) as r:
        body: dict[str, Any] = await r.json()
        assert r.status == expect, body
        return body


async def test_an_accepted_offer_still_names_its_customer(app: App,
                                                        http: aiohttp.ClientSession) -> None:
    """The toast asks who the customer is just after showing; Enter may have accepted the
    offer by then, and the answer must not be a 404 (a console error in the desk)."""
    sup, agent, other = (await login(app, http, "supervisor"), await login(app, http),
                         await login(app, http))
    await agent.listen()
    await agent.state("available")
    try:
        await _accept_and_ask(sup, agent, other)
    finally:  # the module's app is shared: an agent left available takes the next offers
        await agent.state("offline")


async def _accept_and_ask(sup: Panel, agent: Panel, other: Panel) -> None:
    await sup.call("POST", "/api/v1/messages", {
        "channel": "api", "customer": {"kind": "email", "value": "wu@example.org",
                                       "name": "Wu Fang"},
        "text": "hello", "queue": "mail", "thread": uuid.uuid4().hex}, expect=201)
    offer = (await agent.next("offer"))["offer"]
    path = f"/api/v1/offers/{offer['id']}"
    pending = await agent.call("GET", path)
    assert pending["customer"]["name"] == "Wu Fang" and "accepted" not in pending
    await agent.call("POST", path + "/accept")
    await agent.call("GET", path, expect=404)  # no longer pending, and no contact named
    accepted = await agent.call("GET", f"{path}?contact={offer['contact_id']}")
    assert (accepted["accepted"], accepted["customer"]["name"]) == (True, "Wu Fang")
    await other.call("GET", f"{path}?contact={offer['contact_id']}", expect=404)


async def test_conversations_replies_and_wrapup(app: App, http: aiohttp.ClientSession,
                                                tmp_path: Path) -> None:
    recorder = Recorder()
    app.services.outbound.register("api", recorder)
    sup, agent, other = (await login(app, http, "supervisor"), await login(app, http),
                         await login(app, http))
    await agent.listen()
    await agent.state("available")
    assert (await agent.call("GET", "/api/v1/me/conversations"))["conversations"] == []
    first = await take(app, sup, agent, "Li Lei", subject="Broken router")
    second = await take(app, sup, agent, "Han Meimei")
    tabs = (await agent.call("GET", "/api/v1/me/conversations"))["conversations"]
    assert [(t["contact_id"], t["channel"], t["state"], t["customer_name"], t["last_seq"])
            for t in tabs] == [(first, "api", "assigned", "Li Lei", 1),
                               (second, "api", "assigned", "Han Meimei", 1)]
    assert tabs[0]["subject"] == "Broken router" and tabs[0]["customer_id"]
    # The whole panel in one request: each conversation's messages after what it shows.
    full = (await agent.call("GET", "/api/v1/me/conversations?messages=1"))["conversations"]
    assert [[m["text"] for m in c["messages"]] for c in full] == \
        [["hello from Li Lei"], ["hello from Han Meimei"]]
    full = (await agent.call("GET", f"/api/v1/me/conversations?messages=1&after={first}:1"))
    assert [len(c["messages"]) for c in full["conversations"]] == [0, 1]
    bad = await agent.call("GET", "/api/v1/me/conversations?messages=1&after=x:y", expect=400)
    assert "CONTACT:SEQ" in bad["message"]
    # Another agent sees none of them and may not write in them.
    assert (await other.call("GET", "/api/v1/me/conversations"))["conversations"] == []
    await other.call("POST", f"/api/v1/contacts/{first}/messages", {"text": "hi"}, expect=403)

    # A reply with the default subject, then one with the agent's own.
    await agent.call("POST", f"/api/v1/contacts/{first}/messages", {"text": "On it"},
                     expect=201)
    assert (await recorder.sent.get()).subject == "Re: Broken router"
    await agent.call("POST", f"/api/v1/contacts/{first}/messages",
                     {"text": "Fixed", "subject": "Your router\r\nBcc: x@evil.test"},
                     expect=201)
    assert (await recorder.sent.get()).subject == "Your router Bcc: x@evil.test"

    # Attachments: a form with text and files; the channel is handed the bytes. (A
    # browser sends the file name as raw UTF-8, unquoted.)
    data = aiohttp.FormData(quote_fields=False)
    data.add_field("text", "the manual, attached")
    data.add_field("file", b"%PDF-1.4 manual", filename="手册.pdf",
                   content_type="application/pdf")
    sent = await form(agent, first, data, 201)
    out = await recorder.sent.get()
    assert [(a.name, a.content_type, a.data) for a in out.attachments] == \
        [("手册.pdf", "application/pdf", b"%PDF-1.4 manual")]
    listed = (await agent.call("GET", f"/api/v1/contacts/{first}/messages?after=3"))
    (row,) = listed["messages"]
    assert row["seq"] == sent["seq"] == 4 and row["status"] == "sent"
    assert row["attachments"][0]["name"] == "手册.pdf"
    # Too large and a refused type: clear errors naming the file; nothing is sent.
    data = aiohttp.FormData()
    data.add_field("text", "big")
    data.add_field("file", b"x" * 1001, filename="big.pdf", content_type="application/pdf")
    err = await form(agent, first, data, 413)
    assert "big.pdf" in err["message"] and "1000" in err["message"]
    data = aiohttp.FormData()
    data.add_field("text", "run this")
    data.add_field("file", b"ok", filename="a.txt", content_type="text/plain")
    data.add_field("file", b"MZ", filename="run.exe", content_type="application/x-msdownload")
    err = await form(agent, first, data, 422)
    assert "run.exe" in err["message"] and "application/x-msdownload" in err["message"]
    assert recorder.sent.empty()
    after = (await agent.call("GET", f"/api/v1/contacts/{first}/messages?after=4"))
    assert after["messages"] == []

    # Wrap-up: disposition and notes kept, shown with the tab; bad input named.
    await agent.call("POST", f"/api/v1/contacts/{first}/complete")
    await agent.call("POST", f"/api/v1/contacts/{first}/disposition", {}, expect=400)
    bad = await agent.call("POST", f"/api/v1/contacts/{first}/disposition",
                           {"disposition": "x" * 65}, expect=400)
    assert "disposition" in bad["message"]
    await agent.call("POST", f"/api/v1/contacts/{first}/disposition",
                     {"disposition": "resolved", "notes": "router replaced"})
    await other.call("POST", f"/api/v1/contacts/{second}/disposition",
                     {"disposition": "resolved"}, expect=403)
    tabs = (await agent.call("GET", "/api/v1/me/conversations"))["conversations"]
    assert tabs[0]["state"] == "wrapup"
    assert tabs[0]["disposition"]["disposition"] == "resolved"
    assert tabs[0]["disposition"]["notes"] == "router replaced"
    await agent.call("POST", f"/api/v1/contacts/{first}/wrapup-done")
    tabs = (await agent.call("GET", "/api/v1/me/conversations"))["conversations"]
    assert [t["contact_id"] for t in tabs] == [second]
    # A contact no longer held takes no disposition.
    await agent.call("POST", f"/api/v1/contacts/{first}/disposition",
                     {"disposition": "late"}, expect=409)
    await agent.state("offline")
    await agent.close()
