"""One customer across channels: a visitor chats from the web widget giving a phone
number (or writes on WeChat and the agent links the number they gave), then calls from
that number; the call's contact belongs to the same customer and the agent API shows the
chat in the call's history. Real Asterisk, real websocket."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from sqlalchemy import select

from ctl.store.db import Database
from ctl.store.models import Contact
from tests.integration import sip
from tests.integration.agent_api import Panel
from tests.integration.chat_client import ChatVisitor
from tests.integration.harness import Caller, CtlProcess, eventually
from tests.integration.test_wechat import signed, text_xml

pytestmark = pytest.mark.asterisk



async def test_chat_then_call_is_one_customer(ctl: CtlProcess, caller: Caller, db: Database,
                                              http: aiohttp.ClientSession) -> None:
    base = f"http://127.0.0.1:{ctl.port}"
    number = f"+1555123{uuid.uuid4().int % 10000:04d}"
    visitor = ChatVisitor(base, http)
    await visitor.connect()
    await visitor.start(name="Liu Yang", phone=number)
    await visitor.say("my router keeps rebooting", "c1")
    chat_contact = visitor.contact
    await visitor.drop()

    ours, theirs = await caller.call("1000", caller_id=number)
    await caller.wait(ours, "ChannelDestroyed")  # the demo flow answered, played, hung up

    call, sup = await _same_customer(ctl, db, http, theirs, chat_contact)
    seen = (await sup.call("GET", f"/api/v1/contacts/{call.id}/history"))["messages"]
    assert [(m["channel"], m["text"], m["contact_id"]) for m in seen] == \
        [("chat", "my router keeps rebooting", chat_contact)]
    # The customer 360 the desk shows for the call: the call, then the earlier chat.
    page = await sup.call("GET", f"/api/v1/customers/{call.customer_id}/timeline")
    assert [(e["id"], e["channel"]) for e in page["entries"]] == \
        [(call.id, "voice"), (chat_contact, "chat")]
    assert page["entries"][1]["messages"][0]["text"] == "my router keeps rebooting"
    found = await sup.call("GET", f"/api/v1/customers?q={number[2:]}")
    assert [c["id"] for c in found["customers"]] == [call.customer_id]


async def test_wechat_then_call_from_the_verified_number(
        ctl: CtlProcess, caller: Caller, db: Database, http: aiohttp.ClientSession) -> None:
    """A WeChat customer gives their phone number; the agent holding the chat verifies it
    and links it; a call from that number is the same customer, and the call's history
    shows the WeChat conversation."""
    base = f"http://127.0.0.1:{ctl.port}"
    token = ctl.env["CTL_CHANNELS__WECHAT__TOKEN"]
    openid, number = f"o{uuid.uuid4().hex[:20]}", f"+1555124{uuid.uuid4().int % 10000:04d}"
    user = f"wx{uuid.uuid4().hex[:8]}"
    password = await sip.add_agent(ctl.env, user, "Wei Agent",
                                   str(5000000 + uuid.uuid4().int % 1000000))
    # WeChat only: no voice offers from other tests' calls in the shared queue.
    await sip.ctl_command(ctl.env, "agents", "set", user, "--queue", "general",
                          "--capacity", "wechat=2", "--capacity", "voice=0")
    agent = await Panel(base, http).login(user, password)
    await agent.listen()
    await agent.state("available")

    async def wechat(text: str, msg_id: str) -> None:
        async with http.post(f"{base}/channels/wechat", params=signed(token=token),
                             data=text_xml(openid, text, msg_id).encode()) as r:
            assert (r.status, await r.text()) == (200, "success")

    await wechat("我的路由器一直重启", f"71{uuid.uuid4().int % 10**8:08d}")
    offer = await agent.next("offer", timeout=20)
    chat_contact = offer["offer"]["contact_id"]
    await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
    await wechat(f"我的电话是 {number}", f"72{uuid.uuid4().int % 10**8:08d}")
    await agent.next("message", contact=chat_contact)
    linked = await agent.call("POST", f"/api/v1/contacts/{chat_contact}/identities",
                              {"kind": "phone", "value": number}, expect=201)
    assert linked["value"] == number and linked["added"] is True
    # A number another customer has (they called) is not taken over: merging is a
    # supervisor's decision.
    other = f"+1555125{uuid.uuid4().int % 10000:04d}"
    ours, theirs = await caller.call("1000", caller_id=other)
    await caller.wait(ours, "ChannelDestroyed")
    await eventually(lambda: _call_contact(db, theirs), 15, "the other caller's contact")
    refused = await agent.call("POST", f"/api/v1/contacts/{chat_contact}/identities",
                               {"kind": "phone", "value": other}, expect=409)
    assert "another customer" in refused["message"]
    await agent.state("offline")
    await agent.close()

    ours, theirs = await caller.call("1000", caller_id=number)
    await caller.wait(ours, "ChannelDestroyed")

    call, sup = await _same_customer(ctl, db, http, theirs, chat_contact)
    seen = (await sup.call("GET", f"/api/v1/contacts/{call.id}/history"))["messages"]
    assert [(m["channel"], m["text"]) for m in seen] == \
        [("wechat", "我的路由器一直重启"), ("wechat", f"我的电话是 {number}")]


async def _call_contact(db: Database, channel: str) -> Contact | None:
    async with db.session(readonly=True) as s:
        return (await s.scalars(select(Contact).where(
            Contact.channel == "voice", Contact.external_ref == channel))).first()


async def _same_customer(ctl: CtlProcess, db: Database, http: aiohttp.ClientSession,
                         channel: str, chat_contact: str) -> tuple[Contact, Panel]:
    """The call on `channel` belongs to the chat's customer; and a supervisor to read it."""
    call = await eventually(lambda: _call_contact(db, channel), 15, "the call's contact")
    async with db.session(readonly=True) as s:
        chat = await s.get(Contact, chat_contact)
    assert chat is not None and call.customer_id == chat.customer_id  # one customer
    user = f"x{uuid.uuid4().hex[:8]}"
    password = await sip.add_agent(ctl.env, user, "Cross Sup",
                                   str(5000000 + uuid.uuid4().int % 1000000))
    await sip.ctl_command(ctl.env, "agents", "set", user, "--role", "supervisor")
    return call, await Panel(f"http://127.0.0.1:{ctl.port}", http).login(user, password)
