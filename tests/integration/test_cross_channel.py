"""One customer across channels: a visitor chats from the web widget giving a phone
number, then calls from that number; the call's contact belongs to the same customer and
the agent API shows the chat in the call's history. Real Asterisk, real websocket."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from ctl.store.db import Database
from ctl.store.models import Contact
from tests.integration import sip
from tests.integration.agent_api import Panel
from tests.integration.chat_client import ChatVisitor
from tests.integration.harness import Caller, CtlProcess, eventually

pytestmark = pytest.mark.asterisk


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


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

    async def call_contact() -> Contact | None:
        async with db.session(readonly=True) as s:
            return (await s.scalars(select(Contact).where(
                Contact.channel == "voice", Contact.external_ref == theirs))).first()

    call = await eventually(call_contact, 15, "the call's contact")
    async with db.session(readonly=True) as s:
        chat = await s.get(Contact, chat_contact)
    assert chat is not None and call.customer_id == chat.customer_id  # one customer

    user = f"x{uuid.uuid4().hex[:8]}"
    password = await sip.add_agent(ctl.env, user, "Cross Sup",
                                   str(5000000 + uuid.uuid4().int % 1000000))
    await sip.ctl_command(ctl.env, "agents", "set", user, "--role", "supervisor")
    sup = await Panel(base, http).login(user, password)
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
