"""THE agent desktop's call, end to end in a real browser on the real Asterisk: an agent
logs in to the desk in Chromium, its softphone registers (JsSIP over Asterisk's
websocket, with the account GET /api/v1/me/phone gives that agent only) and the agent
goes available; a call placed into the IVR reaches the queue and rings the browser (not
the desk phone); the agent answers by clicking, audio flows both ways (the browser's
WebRTC stats and Asterisk's RTP counters), a key pressed on the keypad reaches the caller,
hold plays the caller music, every control is labelled; the agent hangs up and the
contact is closed as completed. The call's RTCPeerConnection has the controller's STUN
and TURN servers (conftest's `ice`), the TURN credentials this agent's own, and the
browser asked both.
Screenshots are kept (tests/integration/desk_browser.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from panoramisk import Manager
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from ctl.asterisk.process import AsteriskProcess
from ctl.store.db import Database
from ctl.store.models import ContactEvent
from tests.integration import desk_browser, sip, stun
from tests.integration.channels_app import add_agent, channel_settings, database, running
from tests.integration.harness import Caller, CtlProcess, eventually, free_port
from tests.integration.test_ivr import contact_of
from tests.integration.test_voice_queue import QUEUE_NUMBER, new_agent, ring

MAIN_MENU = "1200"  # conftest: the demo's main flow; keys "1" English, "0" an agent
# Every RTCPeerConnection the page makes, for its stats (the softphone keeps its own).
KEEP_CONNECTIONS = """(() => {
  const Native = window.RTCPeerConnection;
  window.peerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();"""
AUDIO = """async () => {
  const totals = {received: 0, bytes: 0, sent: 0};
  const pc = window.peerConnections[window.peerConnections.length - 1];
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      totals.received += s.packetsReceived; totals.bytes += s.bytesReceived;
    }
    if (s.type === "outbound-rtp" && s.kind === "audio") totals.sent += s.packetsSent;
  });
  return totals;
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with desk_browser.chromium() as b:
        yield b


@pytest.fixture
async def moh(asterisk: AsteriskProcess) -> AsyncIterator[tuple[Counter[str], Counter[str]]]:
    """How often Asterisk started and stopped music on hold, by channel id (AMI)."""
    starts: Counter[str] = Counter()
    stops: Counter[str] = Counter()
    manager = Manager(loop=asyncio.get_running_loop(), host="127.0.0.1",
                      port=asterisk.cfg.ami_port, username="ctl",
                      secret=asterisk.secrets.ami_secret, events="on", ping_delay=0)

    def seen(_: Manager, event: Any) -> None:
        (starts if event.get("Event") == "MusicOnHoldStart" else stops)[
            str(event.get("Uniqueid"))] += 1

    manager.register_event("MusicOnHoldStart", seen)
    manager.register_event("MusicOnHoldStop", seen)
    await manager.connect()
    yield starts, stops
    manager.close()


async def _gt(value: int, than: int) -> bool:
    return value > than


async def asterisk_received(caller: Caller, endpoint: str) -> int:
    """RTP packets Asterisk received on the agent's browser channel."""
    channels = [c for c in await caller.ari.channels()
                if c["name"].startswith(f"PJSIP/{endpoint}-")]
    if not channels:
        return 0
    found = await caller.ari.request("GET", f"/channels/{channels[0]['id']}/variable",
                                     variable="CHANNEL(rtcp,rxcount)")
    return int(found.get("value") or 0)


async def audio(page: Page) -> dict[str, Any]:
    totals: dict[str, Any] = await page.evaluate(AUDIO)
    return totals


async def desk_agent(browser: Browser, base: str, username: str, password: str
                     ) -> tuple[BrowserContext, Page, desk_browser.ConsoleErrors]:
    """The agent logged in to the desk, its softphone registered."""
    context = await browser.new_context()
    await context.add_init_script(KEEP_CONNECTIONS)
    page = await context.new_page()
    errors = desk_browser.ConsoleErrors(page)
    page.on("console", lambda m: print("console:", m.type, m.text[:300]))  # shown on failure
    await desk_browser.login(page, base, username, password)
    await page.wait_for_selector("[data-region=phone][data-registration=registered]")
    return context, page, errors


async def available(page: Page) -> None:
    await page.select_option("#agent-state", "available")
    await page.wait_for_selector("[data-region=topbar][data-state=available]")


async def browser_agent(env: dict[str, str]) -> tuple[str, str]:
    username = f"w{uuid.uuid4().hex[:8]}"
    password = await sip.add_agent(env, username, "Wendy Web",
                                   str(5000000 + uuid.uuid4().int % 1000000))
    await sip.ctl_command(env, "agents", "set", username, "--queue", "general",
                          "--language", "en")
    return username, password


async def test_agent_answers_a_queued_call_in_the_browser_softphone(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, browser: Browser,
        moh: tuple[Counter[str], Counter[str]],
        ice: tuple[stun.StunTurn, list[dict[str, Any]]]) -> None:
    music, music_stops = moh
    env = {**os.environ, **ast_env, **backend}
    username, password = await browser_agent(env)
    # The agent's desk phone is registered too (at a port nobody answers on): the offer
    # must ring the browser, or the test never sees it ringing.
    desk_phone = f"agent-{username}"
    (await sip.run("uac_register.xml", "-key", "caller", desk_phone, "-au", desk_phone,
                   "-ap", password, f"127.0.0.1:{asterisk.cfg.sip_port}", "-i", "127.0.0.1",
                   "-p", str(free_port(socket.SOCK_DGRAM)))).check()
    assert await caller.ari.endpoint_online("PJSIP", desk_phone)
    base = f"http://127.0.0.1:{ctl.port}"
    context, page, errors = await desk_agent(browser, base, username, password)
    assert await caller.ari.endpoint_online("PJSIP", f"webrtc-{username}")
    await page.evaluate("""() => { window.answered = null;
        window.desk.on("phone:answered", (d) => { window.answered = d; }); }""")
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/me/phone") as r:
        assert r.status == 401  # the account is its agent's only
    await available(page)

    ours, theirs = await caller.call(MAIN_MENU)
    await caller.wait(ours, "StasisStart")
    await caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="10")
    await page.wait_for_selector(".softphone .call[data-state=ringing]", timeout=30000)
    await desk_browser.screenshot(page, "desk-phone-ringing")
    await page.click(".softphone button.answer")
    await page.wait_for_selector("[data-region=phone][data-call=talking]")
    contact = await contact_of(db, theirs, ("assigned",))
    answered = await page.evaluate("window.answered")
    assert answered["contact_id"] == contact.id
    stun_turn, servers = ice
    used = await page.evaluate(
        "() => window.peerConnections.at(-1).getConfiguration().iceServers")
    assert [s["urls"] for s in used] == [s["urls"] for s in servers]
    turn_user = used[1]["username"]
    expiry, _, user = turn_user.partition(":")
    assert user == f"webrtc-{username}" and 3500 < int(expiry) - time.time() <= 3600
    assert stun_turn.bindings > 0  # the browser asked the STUN server its address
    assert (turn_user, True) in stun_turn.allocations  # and TURN, with those credentials

    # The caller talks (a tone) and the browser's fake microphone beeps: both ways.
    await caller.ari.play(ours, "tone:440/2000,0/500", uuid.uuid4().hex)

    async def flowing() -> dict[str, Any] | None:
        now = await audio(page)
        return now if now["received"] > 25 and now["bytes"] > 0 and now["sent"] > 25 else None

    first = await eventually(flowing, 15, "audio both ways in the browser")

    async def grown() -> dict[str, Any] | None:
        now = await audio(page)
        return now if now["received"] > first["received"] and now["sent"] > first["sent"] \
            else None

    await eventually(grown, 10, "audio still flowing")
    heard = await asterisk_received(caller, f"webrtc-{username}")
    assert heard > 25, f"Asterisk received {heard} RTP packets from the browser"

    # A key on the keypad reaches the caller (RFC 4733 through the bridge).
    await page.click(".softphone button.keys")
    await page.click(".softphone .keypad button[data-key='5']")

    async def key_heard() -> bool:
        return any(e["type"] == "ChannelDtmfReceived" and e.get("digit") == "5"
                   for e in caller.events[ours])

    await eventually(key_heard, 10, "the caller to hear key 5")
    await page.wait_for_function(
        "() => Number(document.querySelector('.softphone .timer').dataset.seconds) >= 1")
    await desk_browser.screenshot(page, "desk-phone-talking")

    # Hold: the caller hears music until the agent takes the call back.
    held = music[theirs]
    await page.click(".softphone button.hold")
    await eventually(lambda: _gt(music[theirs], held), 10, "music for the held caller")
    assert await page.get_attribute(".softphone button.hold", "aria-pressed") == "true"
    stopped = music_stops[theirs]
    await page.click(".softphone button.hold")
    await eventually(lambda: _gt(music_stops[theirs], stopped), 10, "the music to stop")
    assert await desk_browser.unlabelled(page) == []

    await page.click(".softphone button.hangup")
    await page.wait_for_selector("[data-region=phone][data-call=idle]")
    closed = await contact_of(db, theirs, ("closed",))
    assert closed.id == contact.id and closed.close_reason == "completed"
    async with db.session(readonly=True) as s:
        events = list(await s.scalars(select(ContactEvent).where(
            ContactEvent.contact_id == contact.id).order_by(ContactEvent.id)))
    states = [e.to_state for e in events if e.kind == "state"]
    assert states[-3:] == ["offered", "assigned", "closed"], states
    await caller.ari.hangup(ours)  # the caller leaves the flow's survey
    await desk_browser.screenshot(page, "desk-phone-done")
    assert not errors, errors
    await context.close()


async def test_browser_agent_transfers_the_call_to_another_agents_desk_phone(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, browser: Browser) -> None:
    """Transfer from the softphone goes through routing (not SIP REFER): the contact is
    offered to the other agent, whose desk phone rings and answers, and its history says
    so."""
    env = {**os.environ, **ast_env, **backend}
    username, password = await browser_agent(env)
    base = f"http://127.0.0.1:{ctl.port}"
    context, page, errors = await desk_agent(browser, base, username, password)
    await available(page)
    async with aiohttp.ClientSession() as http:
        other = await new_agent(env, asterisk, ctl, http)  # a desk phone (sipp), not available
        ours, theirs = await caller.call(QUEUE_NUMBER)
        await page.wait_for_selector(".softphone .call[data-state=ringing]", timeout=30000)
        await page.click(".softphone button.answer")
        await page.wait_for_selector("[data-region=phone][data-call=talking]")
        contact = await contact_of(db, theirs, ("assigned",))
        phone = await ring(other, "agent_phone_answer.xml", "-d", "1000")
        assert other.panel is not None
        await other.panel.state("available")

        await page.click(".softphone button.transfer")
        await page.select_option("#softphone-transfer-kind", "agent")
        await page.fill("#softphone-transfer-target", other.username)
        await page.press("#softphone-transfer-target", "Enter")
        # Routing hangs the browser up as the call moves on to the other agent.
        await page.wait_for_selector("[data-region=phone][data-call=idle]")
        (await sip.finish(phone, 40)).check()  # rang, answered, talked 1 s, hung up
        closed = await contact_of(db, theirs, ("closed",))
        assert closed.id == contact.id and closed.close_reason == "completed"
        async with db.session(readonly=True) as s:
            events = list(await s.scalars(select(ContactEvent).where(
                ContactEvent.contact_id == contact.id).order_by(ContactEvent.id)))
        assert any(e.data.get("action") == "transferred" for e in events)
        bridged = [e.data["agent"] for e in events if e.data.get("action") == "bridged"]
        assert bridged[-1] == other.panel.agent_id and len(bridged) == 2
        await caller.wait(ours, "StasisEnd")
        await other.panel.state("offline")
        await other.panel.close()
    await desk_browser.screenshot(page, "desk-phone-transferred")
    assert errors == []
    await context.close()


async def test_softphone_without_asterisk_waits_quietly_and_turns_off_by_keyboard(
        tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> None:
    """No Asterisk (the app alone): the softphone says the phone service is unavailable
    instead of letting JsSIP knock on a closed port; the switch works from the keyboard
    and is remembered across a reload."""
    data_dir = tmp_path_factory.mktemp("desk-phone-alone")
    async with database("sqlite", data_dir) as url, \
            running(channel_settings(data_dir, url)) as app:
        username = f"q{uuid.uuid4().hex[:8]}"
        password = await add_agent(app.services, username)
        page = await browser.new_page()
        errors = desk_browser.ConsoleErrors(page)
        await desk_browser.login(page, app.base, username, password)
        phone = page.locator("[data-region=phone]")
        await expect(phone).to_have_attribute("data-registration", "unavailable")
        await expect(page.locator(".softphone .registration")).to_contain_text(
            "not available")
        await page.focus("#softphone-enabled")
        await page.keyboard.press("Space")
        await expect(phone).to_have_attribute("data-registration", "off")
        await page.reload()
        await desk_browser.ready(page)
        await expect(phone).to_have_attribute("data-registration", "off")
        assert not await page.is_checked("#softphone-enabled")
        assert await desk_browser.unlabelled(page) == []
        await desk_browser.screenshot(page, "desk-phone-off")
        assert errors == []
        await page.close()


async def test_two_tabs_register_once_and_either_one_answers(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, browser: Browser) -> None:
    """Two desk tabs of one agent: the first registers, the second says the phone is in
    the other tab; a call rings in the first only, and the toast's Accept in the second
    answers it there. When the first tab closes, the second registers."""
    env = {**os.environ, **ast_env, **backend}
    username, password = await browser_agent(env)
    base = f"http://127.0.0.1:{ctl.port}"
    context, first, errors = await desk_agent(browser, base, username, password)
    second = await context.new_page()
    second_errors = desk_browser.ConsoleErrors(second)
    await second.goto(f"{base}/desk/")
    await desk_browser.ready(second)
    await expect(second.locator("[data-region=phone]")).to_have_attribute(
        "data-registration", "elsewhere")
    await available(second)

    ours, theirs = await caller.call(QUEUE_NUMBER)
    await first.wait_for_selector(".softphone .call[data-state=ringing]", timeout=30000)
    toast = second.locator(".toast[data-channel=voice]")
    await toast.locator(".accept").press("Enter")
    await first.wait_for_selector("[data-region=phone][data-call=talking]")
    assert await second.get_attribute("[data-region=phone]", "data-call") == "idle"
    await contact_of(db, theirs, ("assigned",))
    await caller.ari.hangup(ours)
    await first.wait_for_selector("[data-region=phone][data-call=idle]")

    await first.close()
    await second.wait_for_selector("[data-region=phone][data-registration=registered]")
    assert await caller.ari.endpoint_online("PJSIP", f"webrtc-{username}")
    assert errors == [] and second_errors == []
    await context.close()
