"""The channel contract end to end: inbound message -> customer, contact, routing, agent;
agent reply -> the channel; delivery receipts; the outbound registry. On SQLite and on
PostgreSQL, with a real app, real routing and an adapter of the test's own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from ctl.channels.contract import ChannelError, DeliveryFailed, Outgoing, UnknownChannel
from ctl.store.models import Message
from tests.integration.agent_api import Panel
from tests.integration.channels_app import (
    App,
    channel_settings,
    database,
    login,
    platform_agent,
    running,
)


class Recorder:
    """An adapter that keeps what it is asked to send (or refuses, when told to)."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[Outgoing] = asyncio.Queue()
        self.refuse: str | None = None

    async def send(self, out: Outgoing) -> str | None:
        if self.refuse:
            raise ChannelError(self.refuse)
        self.sent.put_nowait(out)
        return f"ext-{out.message_id}"


@pytest.fixture(scope="module", params=["sqlite", "pg"])
async def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("chan")
    async with database(request.param, data_dir) as url, \
            running(channel_settings(data_dir, url, rate_burst=5, rate_per_minute=6)) as a:
        yield a



async def post(sup: Panel, expect: int = 201, **body: Any) -> dict[str, Any]:
    return await sup.call("POST", "/api/v1/messages", body, expect=expect)


async def test_message_opens_routes_and_reaches_agent(app: App, http: aiohttp.ClientSession
                                                      ) -> None:
    recorder = Recorder()
    app.services.outbound.register("api", recorder)
    sup = await login(app, http, "supervisor", queues=())
    alice = await login(app, http, queues=("mail",))
    await alice.listen()
    await alice.state("available")
    email = f"c{uuid.uuid4().hex[:6]}@Example.org"
    first = await post(sup, channel="api", customer={"kind": "email", "value": email},
                       text="my order is late", subject="Order 42", thread="t1",
                       external_id=f"m1-{email}", queue="mail")
    assert first["opened"] and first["seq"] == 1
    offer = await alice.next("offer")
    assert offer["offer"]["contact_id"] == first["contact"]
    await alice.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
    await alice.next("Assigned")
    # The customer writes again in the same thread: same contact, pushed to her panel.
    second = await post(sup, channel="api", customer={"kind": "email", "value": email},
                        text="any news?", thread="t1", external_id=f"m2-{email}")
    assert second["contact"] == first["contact"] and second["seq"] == 2
    pushed = await alice.next("message")
    assert pushed["message"]["text"] == "any news?" and pushed["message"]["seq"] == 2
    # The adapter delivers it again: stored once.
    again = await post(sup, 200, channel="api", customer={"kind": "email", "value": email},
                       text="any news?", thread="t1", external_id=f"m2-{email}")
    assert again["duplicate"] and again["message"] == second["message"]
    contact = first["contact"]
    sent = await alice.call("POST", f"/api/v1/contacts/{contact}/messages",
                            {"text": "it ships today"}, expect=201)
    out = await asyncio.wait_for(recorder.sent.get(), 5)
    assert (out.to, out.text, out.subject) == (email, "it ships today", "Re: Order 42")
    assert out.refs == (f"m1-{email}", f"m2-{email}")  # the thread, oldest first
    listed = (await alice.call("GET", f"/api/v1/contacts/{contact}/messages"))["messages"]
    assert [(m["seq"], m["direction"], m["status"]) for m in listed] == \
        [(1, "in", "received"), (2, "in", "received"), (3, "out", "sent")]
    assert listed[2]["id"] == sent["id"] and listed[2]["author"] == alice.agent_id
    assert listed[0]["address"] == email and listed[0]["customer_id"] == first["customer"]
    assert await app.services.channels.status("api", f"ext-{sent['id']}", "delivered")
    receipt = await alice.next("message_status")
    assert receipt["message"] == sent["id"] and receipt["status"] == "delivered"
    after = (await alice.call("GET", f"/api/v1/contacts/{contact}/messages?after=2"))
    assert [m["status"] for m in after["messages"]] == ["delivered"]
    await alice.close()


async def test_only_the_holder_reads_and_replies(app: App, http: aiohttp.ClientSession) -> None:
    app.services.outbound.register("api", Recorder())
    sup = await login(app, http, "supervisor", queues=())
    bob = await login(app, http)
    got = await post(sup, channel="api", customer={"kind": "phone", "value": "+12025550177"},
                     text="hello")
    contact = got["contact"]
    await bob.call("GET", f"/api/v1/contacts/{contact}/messages", expect=403)
    body = await bob.call("POST", f"/api/v1/contacts/{contact}/messages", {"text": "x"},
                          expect=403)
    assert "not yours" in body["message"]
    assert len((await sup.call("GET", f"/api/v1/contacts/{contact}/messages"))["messages"]) == 1
    bad = await post(sup, 422, channel="api", customer={"kind": "phone", "value": "12"},
                     text="who am I")
    assert "cannot identify" in bad["message"]
    bad = await post(sup, 404, channel="carrier-pigeon",
                     customer={"kind": "phone", "value": "+12025550177"}, text="coo")
    assert bad["error"] == "unknown_channel"
    bad = await post(sup, 400, channel="api", customer={"kind": "phone"}, text="x")
    assert "'value'" in bad["message"]


async def test_history_spans_channels(app: App, http: aiohttp.ClientSession) -> None:
    sup = await login(app, http, "supervisor", queues=())
    email = f"h{uuid.uuid4().hex[:6]}@example.org"
    one = await post(sup, channel="chat", customer={"kind": "email", "value": email},
                     text="chat first", thread=f"chat-{email}")
    two = await post(sup, channel="email", customer={"kind": "email", "value": email.upper()},
                     text="then a mail", thread=f"mail-{email}")
    assert one["customer"] == two["customer"] and one["contact"] != two["contact"]
    seen = (await sup.call("GET", f"/api/v1/contacts/{two['contact']}/history"))["messages"]
    assert [(m["channel"], m["text"]) for m in seen] == \
        [("chat", "chat first"), ("email", "then a mail")]


async def test_outbound_registry(app: App) -> None:
    out = app.services.outbound
    with pytest.raises(UnknownChannel, match="'fax'"):
        await out.send("fax", "+12025550100", "hi")
    recorder = Recorder()
    out.register("sms", recorder)
    first = await out.send("sms", "+12025550100", "ticket 7 updated", thread="ticket-7")
    second = await out.send("sms", "+12025550100", "ticket 7 solved", thread="ticket-7")
    assert (await recorder.sent.get()).refs == ()
    assert (await recorder.sent.get()).refs == (f"ext-{first}",)
    recorder.refuse = "gateway said 403"
    with pytest.raises(DeliveryFailed, match="gateway said 403"):
        await out.send("sms", "+12025550100", "ticket 7 reopened", thread="ticket-7")
    async with app.services.db.session(readonly=True) as s:
        rows = list(await s.scalars(select(Message).where(Message.thread == "ticket-7")
                                    .order_by(Message.created_at)))
    assert [(r.status, r.status_reason) for r in rows] == \
        [("sent", None), ("sent", None), ("failed", "gateway said 403")]
    assert rows[1].id == second


async def test_rate_limit_per_sender(app: App, http: aiohttp.ClientSession) -> None:
    sup = await login(app, http, "supervisor", queues=())
    who = {"kind": "phone", "value": "+12025550199"}
    for i in range(5):  # the burst
        await post(sup, channel="sms", customer=who, address="+12025550199", text=f"{i}",
                   thread="flood")
    body = await post(sup, 429, channel="sms", customer=who, address="+12025550199",
                      text="one too many", thread="flood")
    assert "+12025550199" in body["message"]
    other = {"kind": "phone", "value": "+12025550198"}  # others are not held back
    await post(sup, channel="sms", customer=other, address="+12025550198", text="hi")


async def test_attachments_limits(app: App, tmp_path: Path) -> None:
    from ctl.channels.contract import Attachment, Rejected

    store = app.services.channels.attachments
    ok = await store.save(Attachment("../../etc/passwd.txt", "text/plain", b"hello"))
    assert ok["name"] == "passwd.txt" and store.path(ok["sha256"]).read_bytes() == b"hello"
    with pytest.raises(Rejected, match="application/x-msdownload"):
        store.check(Attachment("x.exe", "application/x-msdownload", b"MZ"))
    big = Attachment("big.pdf", "application/pdf", b"0" * (store.max_bytes + 1))
    with pytest.raises(Rejected, match="limit"):
        store.check(big)
    kept = await store.accept((big, Attachment("a.png", "image/png", b"png")))
    assert "limit" in kept[0]["dropped"] and kept[1]["size"] == 3


async def test_agent_links_a_verified_identity(app: App, http: aiohttp.ClientSession) -> None:
    app.services.outbound.register("api", Recorder())
    sup = await login(app, http, "supervisor", queues=())
    carol = await platform_agent(app, http, "wechat")  # the only one taking WeChat here
    openid, phone = f"o{uuid.uuid4().hex[:12]}", f"+1202555{uuid.uuid4().int % 10000:04d}"
    got = await post(sup, channel="wechat",
                     customer={"kind": "wechat_openid", "value": openid},
                     text="my number is (202) 555-...")
    contact = got["contact"]
    path = f"/api/v1/contacts/{contact}/identities"
    body = await carol.call("POST", path, {"kind": "phone", "value": phone}, expect=403)
    assert "not yours" in body["message"]  # offered, not yet hers
    offer = await carol.next("offer")
    await carol.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
    national = f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}"  # read in the default region
    linked = await carol.call("POST", path, {"kind": "phone", "value": national}, expect=201)
    assert linked == {"customer_id": got["customer"], "kind": "phone", "value": phone,
                      "added": True}
    again = await carol.call("POST", path, {"kind": "phone", "value": phone})
    assert again["added"] is False
    # The number now finds this customer on every channel.
    by_phone = await post(sup, channel="api", customer={"kind": "phone", "value": phone},
                          text="calling about the same", queue="mail")
    assert by_phone["customer"] == got["customer"]
    other = await post(sup, channel="api", customer={"kind": "email",
                                                      "value": f"{openid}@example.org"},
                       text="someone else", queue="mail")
    taken = await carol.call("POST", path, {"kind": "email", "value": f"{openid}@example.org"},
                             expect=409)
    assert other["customer"] in taken["message"] and "merge" in taken["message"]
    bad = await carol.call("POST", path, {"kind": "phone", "value": "12"}, expect=400)
    assert "not usable" in bad["message"]
    bad = await carol.call("POST", path, {"kind": "shoe_size", "value": "42"}, expect=400)
    assert "unknown identity kind" in bad["message"]
    events = [e.kind for e in await app.services.contacts.events(contact)]
    assert events.count("identity_linked") == 2
    await carol.close()
