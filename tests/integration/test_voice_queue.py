"""Calls in a routing queue on the real Asterisk: hold music and announcements for the
caller, the agent's SIP phone (sipp) rung, answered, bridged and recorded; an unanswered
phone passes the call to the next agent; a caller who gives up is recorded as abandoned.

Extension 1100 is queue "general" (conftest: offers last 4 s, announcements every 2 s).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from panoramisk import Manager
from sqlalchemy import select

from ctl.asterisk.process import AsteriskProcess
from ctl.store.db import Database
from ctl.store.models import Contact, ContactEvent
from tests.integration import sip
from tests.integration.agent_api import Panel
from tests.integration.harness import Caller, CtlProcess, eventually, free_port

QUEUE_NUMBER = "1100"


class Phone:
    """An agent with a registered SIP phone (sipp) and a logged-in panel."""

    def __init__(self, username: str, password: str, port: int, extension: str = "") -> None:
        self.username, self.password, self.port = username, password, port
        self.extension = extension
        self.panel: Panel | None = None

    @property
    def endpoint(self) -> str:
        return f"agent-{self.username}"



async def new_agent(env: dict[str, str], asterisk: AsteriskProcess, ctl: CtlProcess,
                    http: aiohttp.ClientSession) -> Phone:
    username = f"v{uuid.uuid4().hex[:8]}"
    extension = str(4000000 + uuid.uuid4().int % 1000000)
    password = await sip.add_agent(env, username, "Vera Voice", extension)
    await sip.ctl_command(env, "agents", "set", username, "--queue", "general")
    phone = Phone(username, password, free_port(socket.SOCK_DGRAM), extension)
    (await sip.run("uac_register.xml", "-key", "caller", phone.endpoint, "-au", phone.endpoint,
                   "-ap", password, f"127.0.0.1:{asterisk.cfg.sip_port}", "-i", "127.0.0.1",
                   "-p", str(phone.port))).check()
    phone.panel = await Panel(f"http://127.0.0.1:{ctl.port}", http).login(username, password)
    return phone


async def ring(phone: Phone, scenario: str, *args: str) -> asyncio.subprocess.Process:
    """The phone waiting for its call, as `scenario` says it behaves."""
    return await sip.serve(scenario, "127.0.0.1", phone.port, *args)


async def contact_of(db: Database, channel_id: str, timeout: float = 20,
                     states: tuple[str, ...] = ("closed", "abandoned")) -> Contact:
    async def probe() -> Contact | None:
        async with db.session(readonly=True) as s:
            row = await s.scalar(select(Contact).where(Contact.external_ref == channel_id))
        return row if row is not None and row.state in states else None

    return await eventually(probe, timeout, f"the contact of {channel_id} in {states}")


async def events_of(db: Database, contact_id: str) -> list[ContactEvent]:
    async with db.session(readonly=True) as s:
        rows = await s.scalars(select(ContactEvent).where(ContactEvent.contact_id == contact_id)
                               .order_by(ContactEvent.id))
        return list(rows)


@pytest.fixture
async def moh_started(asterisk: AsteriskProcess) -> AsyncIterator[dict[str, asyncio.Event]]:
    """Channels Asterisk started music on hold for (AMI MusicOnHoldStart), by name prefix."""
    started: dict[str, asyncio.Event] = {}
    manager = Manager(loop=asyncio.get_running_loop(), host="127.0.0.1",
                      port=asterisk.cfg.ami_port, username="ctl",
                      secret=asterisk.secrets.ami_secret, events="on", ping_delay=0)

    def seen(_: Manager, event: Any) -> None:
        started.setdefault(str(event.get("Uniqueid")), asyncio.Event()).set()

    manager.register_event("MusicOnHoldStart", seen)
    await manager.connect()
    yield started
    manager.close()


def agent_env(ast_env: dict[str, str], backend: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **ast_env, **backend}


async def test_caller_waits_with_music_then_agent_answers_bridged_and_recorded(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, http: aiohttp.ClientSession,
        moh_started: dict[str, asyncio.Event], data_dir: Path) -> None:
    agent = await new_agent(agent_env(ast_env, backend), asterisk, ctl, http)
    phone = await ring(agent, "agent_phone_answer.xml", "-d", "1500")
    ours, theirs = await caller.call(QUEUE_NUMBER)
    # Nobody is available yet: the caller holds, with music and an announcement.
    await asyncio.wait_for(moh_started.setdefault(theirs, asyncio.Event()).wait(), 15)
    queued = await contact_of(db, theirs, states=("queued",))
    assert agent.panel is not None
    await agent.panel.listen()
    await agent.panel.state("available")
    offer = await agent.panel.next("offer", offer__contact_id=queued.id)
    assert offer["offer"]["channel"] == "voice"

    (await sip.finish(phone, 40)).check()  # rang, answered, talked 1.5 s, hung up
    contact = await contact_of(db, theirs)
    assert (contact.state, contact.close_reason) == ("closed", "completed")
    events = await events_of(db, contact.id)
    states = [e.to_state for e in events if e.kind == "state"]
    assert states == ["new", "ivr", "queued", "offered", "assigned", "closed"], states
    bridged = [e.data for e in events if e.kind == "call" and e.data.get("action") == "bridged"]
    assert bridged and bridged[0]["agent"] == agent.panel.agent_id
    recording = data_dir / "asterisk" / "spool" / "recording" / bridged[0]["recording"]
    assert recording.exists() and recording.stat().st_size > 44  # more than a WAV header
    await caller.wait(ours, "StasisEnd")
    await agent.panel.state("offline")
    await agent.panel.close()
    await no_leftovers(caller, contact.id)


async def test_unanswered_phone_passes_the_call_to_the_next_agent(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, http: aiohttp.ClientSession) -> None:
    env = agent_env(ast_env, backend)
    absent, present = (await new_agent(env, asterisk, ctl, http),
                       await new_agent(env, asterisk, ctl, http))
    absent_phone = await ring(absent, "agent_phone_no_answer.xml")
    present_phone = await ring(present, "agent_phone_answer.xml", "-d", "500")
    for agent in (absent, present):  # absent first: the longest idle is offered first
        assert agent.panel is not None
        await agent.panel.state("available")
    _, theirs = await caller.call(QUEUE_NUMBER)

    (await sip.finish(absent_phone, 30)).check()  # rang ~4 s, then CANCEL
    (await sip.finish(present_phone, 30)).check()
    contact = await contact_of(db, theirs)
    events = await events_of(db, contact.id)
    offers = [e.data["agent"] for e in events if e.kind == "state" and e.to_state == "offered"]
    assert offers == [absent.panel.agent_id, present.panel.agent_id]  # type: ignore[union-attr]
    ended = [e.data for e in events if e.kind == "offer_ended"]
    assert ended[0]["reason"] == "timeout"
    assert contact.state == "closed"
    for agent in (absent, present):
        await agent.panel.state("offline")  # type: ignore[union-attr]
    await no_leftovers(caller, contact.id)


async def test_caller_who_hangs_up_while_waiting_is_abandoned_with_the_wait(
        ctl: CtlProcess, db: Database, caller: Caller) -> None:
    ours, theirs = await caller.call(QUEUE_NUMBER)
    queued = await contact_of(db, theirs, states=("queued",))

    async def announced() -> ContactEvent | None:
        return next((e for e in await events_of(db, queued.id) if e.kind == "announcement"),
                    None)

    announcement = await eventually(announced, 15, "a position announcement")
    assert announcement.data["position"] >= 1
    await caller.ari.hangup(ours)
    contact = await contact_of(db, theirs)
    assert (contact.state, contact.close_reason) == ("abandoned", "caller_hangup")
    last = (await events_of(db, contact.id))[-1]
    assert last.to_state == "abandoned" and last.data["waited"] >= 2
    await no_leftovers(caller, contact.id)


async def no_leftovers(caller: Caller, bridge_id: str) -> None:
    async def clean() -> bool:
        bridges = {b["id"] for b in await caller.ari.bridges()}
        return bridge_id not in bridges and not [
            c for c in await caller.ari.channels() if c["name"].startswith("PJSIP/agent-v")]

    await eventually(clean, 10, "no bridge or agent channel left behind")


async def test_agent_transfers_the_call_to_another_agent(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, http: aiohttp.ClientSession,
        data_dir: Path) -> None:
    env = agent_env(ast_env, backend)
    first, second = (await new_agent(env, asterisk, ctl, http),
                     await new_agent(env, asterisk, ctl, http))
    first_phone = await ring(first, "agent_phone_hung_up.xml")
    second_phone = await ring(second, "agent_phone_answer.xml", "-d", "1000")
    assert first.panel is not None and second.panel is not None
    await first.panel.listen()
    await first.panel.state("available")
    _, theirs = await caller.call(QUEUE_NUMBER)
    assigned = await first.panel.next("Assigned", timeout=20)
    await second.panel.state("available")
    await first.panel.call("POST", f"/api/v1/contacts/{assigned['contact_id']}/transfer",
                           {"agent": second.username})
    (await sip.finish(first_phone, 30)).check()  # hung up by the transfer
    (await sip.finish(second_phone, 30)).check()  # rang, answered, talked, hung up
    contact = await contact_of(db, theirs)
    events = await events_of(db, contact.id)
    states = [e.to_state for e in events if e.kind == "state"]
    assert states == ["new", "ivr", "queued", "offered", "assigned", "queued", "offered",
                      "assigned", "closed"], states
    bridged = [e.data for e in events if e.kind == "call" and e.data.get("action") == "bridged"]
    assert [b["agent"] for b in bridged] == [first.panel.agent_id, second.panel.agent_id]
    spool = data_dir / "asterisk" / "spool" / "recording"
    assert all((spool / b["recording"]).exists() for b in bridged)
    for agent in (first, second):
        await agent.panel.state("offline")  # type: ignore[union-attr]
        await agent.panel.close()  # type: ignore[union-attr]
    await no_leftovers(caller, contact.id)


async def test_caller_presses_1_keeps_the_place_and_is_called_back(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, http: aiohttp.ClientSession,
        data_dir: Path) -> None:
    ours, theirs = await caller.call(QUEUE_NUMBER, caller_id="1999")  # 1999 answers
    queued = await contact_of(db, theirs, states=("queued",))
    await caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="1")
    await caller.wait(ours, "StasisEnd")  # the caller is let go...
    await eventually(lambda: has_event(db, queued.id, "callback", "requested"), 10,
                     "the callback request")
    async with db.session(readonly=True) as s:
        row = await s.get(Contact, queued.id)
        assert row is not None and row.state == "queued"  # ...and keeps the place

    agent = await new_agent(agent_env(ast_env, backend), asterisk, ctl, http)
    phone = await ring(agent, "agent_phone_hung_up.xml")  # until the customer hangs up
    assert agent.panel is not None
    await agent.panel.state("available")
    (await sip.finish(phone, 40)).check()
    contact = await contact_of(db, theirs)
    events = await events_of(db, contact.id)
    callbacks = [e.data for e in events if e.kind == "callback"]
    assert [c["action"] for c in callbacks] == ["requested", "dialling", "answered"]
    states = [e.to_state for e in events if e.kind == "state"]
    assert states == ["new", "ivr", "queued", "offered", "assigned", "closed"], states
    bridged = [e.data for e in events if e.kind == "call" and e.data.get("action") == "bridged"]
    assert len(bridged) == 1 and bridged[0]["agent"] == agent.panel.agent_id
    assert (data_dir / "asterisk" / "spool" / "recording" / bridged[0]["recording"]).exists()
    await agent.panel.state("offline")
    await no_leftovers(caller, contact.id)


async def test_callback_nobody_answers_is_retried_then_given_up(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, http: aiohttp.ClientSession) -> None:
    ours, theirs = await caller.call(QUEUE_NUMBER, caller_id="1998")  # no such number
    queued = await contact_of(db, theirs, states=("queued",))
    await caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="1")
    await eventually(lambda: has_event(db, queued.id, "callback", "requested"), 10,
                     "the callback request")
    agent = await new_agent(agent_env(ast_env, backend), asterisk, ctl, http)
    # The agent's phone answers each attempt and is hung up when the customer cannot be
    # reached: once, and once more for the retry.
    phone = await ring(agent, "agent_phone_hung_up.xml", "-m", "2")
    assert agent.panel is not None
    await agent.panel.state("available")
    (await sip.finish(phone, 60)).check()
    contact = await contact_of(db, theirs)
    assert (contact.state, contact.close_reason) == ("closed", "callback_failed")
    events = await events_of(db, contact.id)
    dialled = [e.data["attempt"] for e in events
               if e.kind == "callback" and e.data["action"] == "dialling"]
    assert dialled == [1, 2]  # retried once (callback_retries=1), never twice at a time
    await agent.panel.state("offline")
    await no_leftovers(caller, contact.id)


async def has_event(db: Database, contact_id: str, kind: str, action: str) -> bool:
    return any(e.kind == kind and e.data.get("action") == action
               for e in await events_of(db, contact_id))


async def test_warm_transfer_consults_then_hands_the_caller_over(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, http: aiohttp.ClientSession) -> None:
    env = agent_env(ast_env, backend)
    first, second = (await new_agent(env, asterisk, ctl, http),
                     await new_agent(env, asterisk, ctl, http))
    first_phone = await ring(first, "agent_phone_hung_up.xml")
    second_phone = await ring(second, "agent_phone_answer.xml", "-d", "3000")
    assert first.panel is not None and second.panel is not None
    await first.panel.listen()
    await first.panel.state("available")
    _, theirs = await caller.call(QUEUE_NUMBER)
    contact_id = (await first.panel.next("Assigned", timeout=20))["contact_id"]
    await second.panel.state("available")
    await first.panel.call("POST", f"/api/v1/contacts/{contact_id}/consult",
                           {"agent": second.username})

    async def agents_talking() -> bool:  # the customer out of the bridge, both phones in
        bridge = await caller.ari.request("GET", f"/bridges/{contact_id}")
        return theirs not in bridge["channels"] and len(bridge["channels"]) == 2

    await eventually(agents_talking, 15, "the two agents in the bridge")
    await first.panel.call("POST", f"/api/v1/contacts/{contact_id}/consult/complete")
    (await sip.finish(first_phone, 30)).check()  # the first agent is let go
    (await sip.finish(second_phone, 30)).check()  # the second talks, then hangs up
    contact = await contact_of(db, theirs)
    assert contact.agent_id == second.panel.agent_id
    events = await events_of(db, contact.id)
    consults = [e.data["action"] for e in events if e.kind == "consult"]
    assert consults == ["started", "handed_over"]
    states = [e.to_state for e in events if e.kind == "state"]
    assert states == ["new", "ivr", "queued", "offered", "assigned", "closed"], states
    for agent in (first, second):
        await agent.panel.state("offline")  # type: ignore[union-attr]
    await first.panel.close()
    await no_leftovers(caller, contact.id)


async def test_queue_that_gives_up_tells_the_caller_and_records_where_it_went(
        ctl: CtlProcess, db: Database, caller: Caller) -> None:
    ours, theirs = await caller.call("1101")  # queue "tiny": max_wait 2 s, then voicemail
    await caller.wait(ours, "StasisEnd", timeout=20)  # apologised to, then hung up
    contact = await contact_of(db, theirs, states=("overflowed",))
    assert contact.close_reason == "max_wait"
    last = [e for e in await events_of(db, contact.id) if e.kind == "state"][-1]
    assert last.data["to"] == {"kind": "voicemail", "target": ""}
    prompts = [e.data for e in await events_of(db, contact.id) if e.kind == "prompt"]
    assert prompts[-1]["media"] == ["sound:im-sorry", "sound:please-try-call-later"]


async def test_queue_that_overflows_to_callbacks_lets_the_caller_go_then_calls_back(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, http: aiohttp.ClientSession) -> None:
    ours, theirs = await caller.call("1102", caller_id="1999")  # "later": 2 s, then callback
    await caller.wait(ours, "StasisEnd", timeout=20)  # told, then the line closes
    queued = await contact_of(db, theirs, states=("queued",))  # waiting on, without a call
    events = await events_of(db, queued.id)
    assert [e.data for e in events if e.kind == "overflow"] == [
        {"queue": "later", "reason": "max_wait", "to": {"kind": "callback", "target": ""}}]
    assert [e.data["action"] for e in events if e.kind == "callback"] == ["requested"]
    assert [e.data["media"] for e in events if e.kind == "prompt"][-1] == "sound:queue-thankyou"

    env = agent_env(ast_env, backend)
    agent = await new_agent(env, asterisk, ctl, http)
    await sip.ctl_command(env, "agents", "set", agent.username, "--queue", "later")
    phone = await ring(agent, "agent_phone_hung_up.xml")  # until the customer hangs up
    assert agent.panel is not None
    await agent.panel.state("available")
    (await sip.finish(phone, 40)).check()
    contact = await contact_of(db, theirs)
    assert (contact.state, contact.close_reason) == ("closed", "completed")
    assert contact.enqueued_at == queued.enqueued_at
    events = await events_of(db, contact.id)
    callbacks = [e.data["action"] for e in events if e.kind == "callback"]
    assert callbacks == ["requested", "dialling", "answered"]
    await agent.panel.state("offline")
    await no_leftovers(caller, contact.id)
