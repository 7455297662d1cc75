"""Real calls into the project's Asterisk, answered by a real `ctl serve` process."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from ctl.asterisk.process import AsteriskProcess
from ctl.contacts.states import FINAL
from ctl.errors import NoSuchChannel
from ctl.store.db import Database
from ctl.store.models import Contact, ContactEvent, Identity
from tests.integration.harness import Caller, CtlProcess, eventually

SIPP_SCENARIO = Path(__file__).parents[1] / "sipp" / "uac_wait_bye.xml"


async def final_contact(db: Database, channel_id: str, timeout: float = 15) -> Contact:
    async def probe() -> Contact | None:
        async with db.session() as s:
            c = (await s.execute(select(Contact).where(Contact.external_ref == channel_id))
                 ).scalar_one_or_none()
        return c if c is not None and c.state in FINAL else None

    return await eventually(probe, timeout, f"contact of {channel_id} to be final")


async def events_of(db: Database, contact_id: str) -> list[ContactEvent]:
    async with db.session() as s:
        rows = await s.execute(select(ContactEvent).where(ContactEvent.contact_id == contact_id)
                               .order_by(ContactEvent.id))
        return list(rows.scalars())


async def assert_nothing_left(asterisk_ari: Caller, channel_ids: list[str]) -> None:
    channels = {c["id"] for c in await asterisk_ari.ari.channels()}
    assert not channels & set(channel_ids), "a channel of the call is still up"
    assert await asterisk_ari.ari.bridges() == []


async def test_scripted_call_is_answered_played_and_recorded(
        ctl: CtlProcess, caller: Caller, db: Database) -> None:
    ours, theirs = await caller.call("1000", caller_id="+15551230001")
    await caller.wait(ours, "StasisStart")  # answered by the controller
    await caller.wait(ours, "ChannelDestroyed")  # controller hung up after the prompt
    contact = await final_contact(db, theirs)
    assert contact.state == "closed"
    assert contact.close_reason == "completed"
    assert contact.channel == "voice"
    assert contact.attributes["flow"] == "demo"
    events = await events_of(db, contact.id)
    states = [e.to_state for e in events if e.kind == "state"]
    assert states == ["new", "ivr", "closed"]
    prompts = [e.data for e in events if e.kind == "prompt"]
    assert prompts and prompts[0]["state"] == "done"  # PlaybackFinished reached the end
    assert prompts[0]["ms"] > 500  # hello-world really played, it was not cut short
    async with db.session() as s:
        ident = (await s.execute(select(Identity).where(Identity.value == "+15551230001"))
                 ).scalar_one()
    assert ident.customer_id == contact.customer_id
    await assert_nothing_left(caller, [ours, theirs])


async def test_caller_hanging_up_mid_prompt_closes_with_reason(
        ctl: CtlProcess, caller: Caller, db: Database) -> None:
    ours, theirs = await caller.call("1000", caller_id="+15551230002")
    await caller.wait(ours, "StasisStart")
    await caller.ari.hangup(ours)
    contact = await final_contact(db, theirs)
    assert contact.state == "closed"
    assert contact.close_reason == "caller_hangup"
    await assert_nothing_left(caller, [ours, theirs])


async def test_sip_call_with_sipp(ctl: CtlProcess, caller: Caller, db: Database,
                                  asterisk: AsteriskProcess) -> None:
    assert shutil.which("sipp"), "sipp is required (apt-get install sip-tester)"
    before = {c["id"] for c in await caller.ari.channels()}
    proc = await asyncio.create_subprocess_exec(
        "sipp", "-sf", str(SIPP_SCENARIO), "-s", "1000", "-key", "caller", "+15551230003",
        f"127.0.0.1:{asterisk.cfg.sip_port}", "-i", "127.0.0.1", "-p", "0", "-m", "1",
        "-timeout", "30", "-timeout_error", "-nostdin",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]

    async def sip_contact() -> Contact | None:
        async with db.session() as s:
            rows = await s.execute(select(Contact).where(Contact.state.in_(list(FINAL)))
                                   .order_by(Contact.created_at.desc()))
            for c in rows.scalars():
                if c.attributes.get("caller") == "+15551230003" and c.external_ref not in before:
                    return c
        return None

    contact = await eventually(sip_contact, 15, "the SIP call's contact")
    assert contact.close_reason == "completed"


async def test_health_reports_every_dependency(
        ctl: CtlProcess, backend: dict[str, str]) -> None:
    body = await ctl.health()
    assert body is not None and body["ok"]
    checks = body["checks"]
    assert {k for k, v in checks.items() if v["ok"]} >= {"ari", "ami", "db", "redis"}
    if "CTL_REDIS_URL" in backend:
        assert len(checks["redis"]["nodes"]) == 1  # this controller's heartbeat
    else:
        assert checks["redis"]["mode"] == "in-process"


async def test_metrics_count_calls(ctl: CtlProcess, caller: Caller, db: Database) -> None:
    import aiohttp

    ours, theirs = await caller.call("1000", caller_id="+15551230009")
    await caller.wait(ours, "ChannelDestroyed")
    await final_contact(db, theirs)
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{ctl.port}/metrics") as r:
        text = await r.text()
    assert r.status == 200
    assert 'ctl_calls_total{how="new"}' in text
    assert "ctl_ari_connected 1.0" in text
    # answer and play went over the events websocket, not HTTP
    assert 'ctl_ari_request_seconds_count{method="POST",transport="ws"}' in text


async def test_ari_requests_over_the_events_websocket(
        ctl: CtlProcess, caller: Caller, asterisk: AsteriskProcess) -> None:
    async def on_websocket() -> bool:
        return caller.ari.over_websocket

    await eventually(on_websocket, 5, "Asterisk to answer the probe on the websocket")
    assert (await caller.ari.info())["system"]["version"]
    with pytest.raises(NoSuchChannel):  # the same typed errors as over HTTP
        await caller.ari.answer("no-such-channel")
    await caller.ari.ignore_events("ChannelVarset")  # a JSON body
    try:
        app = await caller.ari.application()
        assert app["events_disallowed"] == [{"type": "ChannelVarset"}]
    finally:
        await caller.ari.ignore_events()
    ctl_app = await caller.ari.application(asterisk.cfg.app)  # ctl's own filter
    assert {"type": "ChannelVarset"} in ctl_app["events_disallowed"]


async def test_asterisk_http_takes_more_sessions_than_its_default(
        asterisk: AsteriskProcess) -> None:
    """ctl's ARI pool and every agent's softphone websocket are sessions of Asterisk's HTTP
    server, whose own default refuses the 101st; 300 held at once are all answered."""
    auth = base64.b64encode(f"ctl:{asterisk.secrets.ari_password}".encode()).decode()
    request = (f"GET /ari/asterisk/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Basic {auth}\r\n\r\n").encode()
    held = [await asyncio.open_connection("127.0.0.1", asterisk.cfg.http_port)
            for _ in range(300)]
    try:
        for _, writer in held:
            writer.write(request)
        answers = [await asyncio.wait_for(reader.readline(), 10) for reader, _ in held]
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), \
            f"{sum(not a for a in answers)} of 300 connections were closed unanswered"
    finally:
        for _, writer in held:
            writer.close()
