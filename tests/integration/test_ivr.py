"""YAML flows on the real Asterisk: scripted callers (Local channels in a test app sending
real DTMF and audio) walk the demo flows to self-service, to a queue, to voicemail; a flow
published while 20 calls are in it does not disturb them.

Numbers (conftest): 1200 main, 1201 order-status, 1202 after-hours, 1210 reload-test.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from ctl.asterisk.process import AsteriskProcess
from ctl.store.db import Database
from ctl.store.models import Contact, ContactEvent, Ticket, TicketContact
from tests.integration import sip
from tests.integration.agent_api import Panel
from tests.integration.harness import Caller, CtlProcess, eventually, free_port


async def contact_of(db: Database, channel_id: str, states: tuple[str, ...],
                     timeout: float = 30) -> Contact:
    async def probe() -> Contact | None:
        async with db.session(readonly=True) as s:
            row = await s.scalar(select(Contact).where(Contact.external_ref == channel_id))
        return row if row is not None and row.state in states else None

    return await eventually(probe, timeout, f"the contact of {channel_id} in {states}")


async def events_of(db: Database, contact_id: str) -> list[ContactEvent]:
    async with db.session(readonly=True) as s:
        return list(await s.scalars(select(ContactEvent).where(
            ContactEvent.contact_id == contact_id).order_by(ContactEvent.id)))


def path(events: list[ContactEvent]) -> list[str]:
    return [f"{e.data['flow']}:{e.data['step']}" for e in events if e.kind == "ivr"]


async def answered(caller: Caller, ours: str) -> None:
    await caller.wait(ours, "StasisStart")


async def test_order_status_self_service_by_keys(ctl: CtlProcess, caller: Caller,
                                                 db: Database) -> None:
    ours, theirs = await caller.call("1201")
    await answered(caller, ours)
    await caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="12345#")
    await caller.wait(ours, "StasisEnd", timeout=30)  # the flow ran to its end and hung up
    contact = await contact_of(db, theirs, ("closed",))
    assert contact.close_reason == "completed"
    events = await events_of(db, contact.id)
    assert path(events) == ["order-status:ask", "order-status:fetch", "order-status:tell",
                            "order-status:text_it", "order-status:done"]
    assert {"keys": "12345"} in [e.data for e in events if e.kind == "keys"]
    http = next(e.data for e in events if e.kind == "http")
    assert http["status"] == 200 and http["url"].endswith("/demo/orders/12345")
    variables = next(e.data for e in events if e.kind == "ivr_vars")
    assert variables["order_number"] == "12345" and variables["order_checked"] is True
    assert variables["order"]["body"]["status"] in ("processing", "shipped",
                                                    "out for delivery")
    left = {e.data["step"]: e.data for e in events if e.kind == "ivr_left"}
    assert left["ask"]["outcome"] is None and left["fetch"]["outcome"] is None


async def test_main_menu_to_a_queue_in_mandarin_then_abandon(ctl: CtlProcess, caller: Caller,
                                                             db: Database) -> None:
    ours, theirs = await caller.call("1200", caller_id="+8613800138000")
    await answered(caller, ours)
    await caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="20")  # 中文, agent
    queued = await contact_of(db, theirs, ("queued",))
    await caller.ari.hangup(ours)
    contact = await contact_of(db, theirs, ("abandoned",))
    assert contact.id == queued.id
    events = await events_of(db, contact.id)
    assert path(events) == ["main:hours", "main:who", "main:language", "main:main_menu",
                            "main:agent"]
    assert queued.criteria and queued.criteria[0]["languages"] == ["zh-CN"]
    variables = next(e.data for e in events if e.kind == "ivr_vars")
    assert variables["language"] == "zh-CN" and variables["caller"] == "+8613800138000"
    assert any(e.to_state == "queued" for e in events)


async def test_after_hours_voicemail_becomes_a_ticket(ctl: CtlProcess, caller: Caller,
                                                      db: Database, settings: Any) -> None:
    started = time.time()
    ours, theirs = await caller.call("1202", caller_id="+15551230077")
    await answered(caller, ours)
    await caller.ari.play(ours, "sound:demo-congrats", "speaking")  # the caller's message
    spool = (Path(os.environ["CTL_DATA_DIR"]) / "asterisk" / "spool" / "recording")

    async def recorded() -> bool | None:  # some speech is in the voicemail
        files = [p for p in spool.glob("*-voicemail-*.wav") if p.stat().st_size > 24000
                 and p.stat().st_mtime > started]
        return True if files else None

    await eventually(recorded, 30, "a voicemail with speech in it")
    await caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="#")  # done
    await caller.wait(ours, "StasisEnd", timeout=30)
    contact = await contact_of(db, theirs, ("closed",))
    events = await events_of(db, contact.id)
    assert path(events) == ["after-hours:closed", "after-hours:voicemail",
                            "after-hours:thanks", "after-hours:bye"]
    voicemail = next(e.data for e in events if e.kind == "voicemail")
    assert voicemail["seconds"] >= 1
    assert voicemail["recording"].startswith(str(spool.resolve()))
    async with db.session(readonly=True) as s:
        ticket = await s.scalar(select(Ticket).join(
            TicketContact, TicketContact.ticket_id == Ticket.id).where(
            TicketContact.contact_id == contact.id))
    assert ticket is not None
    assert ticket.subject == "After-hours voicemail from +15551230077"
    assert ticket.attachments and voicemail["recording"] in str(ticket.attachments)
    assert ticket.customer_id == contact.customer_id


RELOAD_V1 = """name: reload-test
start: wait
steps:
  wait:
    menu: {prompt: [{play: "sound:silence/1"}], choices: {"1": first}, timeout: 60, retries: 0}
  first:
    set: {version_seen: 1}
"""
RELOAD_V2 = RELOAD_V1.replace("first", "second").replace("version_seen: 1", "version_seen: 2")


async def test_publishing_while_20_calls_are_in_the_flow(
        ctl: CtlProcess, caller: Caller, db: Database, tmp_path: Path,
        ast_env: dict[str, str], backend: dict[str, str]) -> None:
    env = {**os.environ, **ast_env, **backend}
    flow = tmp_path / "reload-test.yaml"
    flow.write_text(RELOAD_V1)
    out = await sip.ctl_command(env, "flows", "publish", str(flow))
    v1 = int(out.split("version ")[1].split()[0])

    async def published(version: int) -> bool | None:
        health = await ctl.health()
        versions = health["checks"]["flows"]["versions"] if health else {}
        return True if versions.get("reload-test") == version else None

    await eventually(lambda: published(v1), 10, "ctl to take version 1")
    calls = [await caller.call("1210") for _ in range(20)]
    for ours, _ in calls:
        await answered(caller, ours)
    for _, theirs in calls:
        await contact_of(db, theirs, ("ivr",))
    flow.write_text(RELOAD_V2)
    await sip.ctl_command(env, "flows", "publish", str(flow))
    await eventually(lambda: published(v1 + 1), 10, "ctl to take version 2")
    late_ours, late_theirs = await caller.call("1210")
    await answered(caller, late_ours)
    for ours, _ in [*calls, (late_ours, late_theirs)]:
        await caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="1")
    for _, theirs in calls:
        contact = await contact_of(db, theirs, ("closed",))
        assert contact.close_reason == "completed"
        assert path(await events_of(db, contact.id)) == ["reload-test:wait",
                                                          "reload-test:first"]
    late = await contact_of(db, late_theirs, ("closed",))
    steps = [e.data for e in await events_of(db, late.id) if e.kind == "ivr"]
    assert [s["step"] for s in steps] == ["wait", "second"]
    assert {s["version"] for s in steps} == {v1 + 1}


async def test_agent_then_survey_keeps_the_caller_and_frees_the_agent(
        asterisk: AsteriskProcess, ctl: CtlProcess, caller: Caller, db: Database,
        ast_env: dict[str, str], backend: dict[str, str]) -> None:
    env = {**os.environ, **ast_env, **backend}
    username = f"i{uuid.uuid4().hex[:8]}"
    password = await sip.add_agent(env, username, "Ivy IVR", str(5000000 + uuid.uuid4().int
                                                                   % 1000000))
    await sip.ctl_command(env, "agents", "set", username, "--queue", "general",
                          "--language", "en")
    port = free_port(socket.SOCK_DGRAM)
    endpoint = f"agent-{username}"
    (await sip.run("uac_register.xml", "-key", "caller", endpoint, "-au", endpoint, "-ap",
                   password, f"127.0.0.1:{asterisk.cfg.sip_port}", "-i", "127.0.0.1",
                   "-p", str(port))).check()
    async with aiohttp.ClientSession() as http:
        panel = await Panel(f"http://127.0.0.1:{ctl.port}", http).login(username, password)
        await panel.state("available")
        phone = await sip.serve("agent_phone_answer.xml", "127.0.0.1", port, "-d", "1000")
        ours, theirs = await caller.call("1200")
        await answered(caller, ours)
        await caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="10")  # English, agent
        (await sip.finish(phone, 40)).check()  # rang, answered, talked 1 s, hung up
        await caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="5")  # the survey
        await caller.wait(ours, "StasisEnd", timeout=30)
        contact = await contact_of(db, theirs, ("closed",))
        events = await events_of(db, contact.id)
        assert path(events)[-3:] == ["main:agent", "main:survey", "main:goodbye"]
        assert {"csat": 5, "scale": 5} in [e.data for e in events if e.kind == "survey"]
        states = [e.to_state for e in events if e.kind == "state"]
        assert states[:6] == ["new", "ivr", "queued", "offered", "assigned", "closed"], states
        status = await panel.call("GET", "/api/v1/me")
        # The agent was freed when they hung up, not when the caller finished the survey.
        assert status["contacts"] == [] and status["status"] == "available", status
        await panel.state("offline")


TRANSFER = """name: transfer-test
start: out
steps:
  out:
    transfer: {number: "{{ target }}"}
    on: {failed: nobody}
    next: back
  back:
    set: {came_back: true}
  nobody:
    set: {failed: true}
"""


async def test_transfer_to_an_outside_number_and_back(
        ctl: CtlProcess, caller: Caller, db: Database, tmp_path: Path,
        ast_env: dict[str, str], backend: dict[str, str]) -> None:
    env = {**os.environ, **ast_env, **backend}
    results = {}
    for target, then in (("1999", "back"), ("1998", "nobody")):  # answers / does not exist
        flow = tmp_path / "transfer-test.yaml"
        flow.write_text(TRANSFER.replace("{{ target }}", target))
        await sip.ctl_command(env, "flows", "publish", str(flow))
        out = await sip.ctl_command(env, "flows", "versions", "transfer-test")
        version = int(out.strip().splitlines()[-1].split()[1].lstrip("v"))

        async def published(v: int = version) -> bool | None:
            health = await ctl.health()
            versions = health["checks"]["flows"]["versions"] if health else {}
            return True if versions.get("transfer-test") == v else None

        await eventually(published, 10, "ctl to take the transfer flow")
        ours, theirs = await caller.call("1211")
        await caller.wait(ours, "StasisEnd", timeout=30)
        contact = await contact_of(db, theirs, ("closed",))
        events = await events_of(db, contact.id)
        results[target] = events
        assert path(events) == ["transfer-test:out", f"transfer-test:{then}"], \
            [(e.kind, e.reason, e.data) for e in events]
    actions = [e.data.get("action") for e in results["1999"] if e.kind == "call"]
    assert "transferred_out" in actions
    assert "transfer_failed" in [e.data.get("action") for e in results["1998"]
                                 if e.kind == "call"]


async def test_main_menu_by_voice(ctl: CtlProcess, caller: Caller, db: Database,
                                  settings: Any) -> None:
    from ctl.speech import build

    tts = build.tts(settings)
    try:  # the caller's words, in the natural (piper) voice
        words = await tts.render("I want a refund", "en", None)
    finally:
        await tts.close()
    ours, theirs = await caller.call("1200")
    await answered(caller, ours)
    await caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="1")  # English

    async def listening() -> bool | None:  # the recogniser taps the call's audio
        bridges = await caller.ari.bridges()
        return True if any(len(b["channels"]) == 2 for b in bridges
                           if b["id"].startswith("speech-")) else None

    await eventually(listening, 30, "the main menu listening")
    await caller.ari.play(ours, words, uuid.uuid4().hex)
    queued = await contact_of(db, theirs, ("queued",))
    await caller.ari.hangup(ours)
    await contact_of(db, theirs, ("abandoned",))
    events = await events_of(db, queued.id)
    assert path(events)[-2:] == ["main:main_menu", "main:refunds"]
    heard = next(e.data for e in events if e.kind == "speech")
    assert heard["intent"] == "refunds" and heard["dtmf"] == "", heard
    assert queued.criteria[0]["skills"] == {"refunds": 2}
