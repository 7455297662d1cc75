"""THE agent desktop's call, end to end in a real browser on the real Asterisk.

A customer chatted earlier (the web chat's pre-chat form took their phone number) and now
calls from that number; an agent logs in to the desk in Chromium, its softphone registers
(JsSIP over Asterisk's websocket, with the account GET /api/v1/me/phone gives that agent
only) and the agent goes available; the call goes through the IVR into the queue and rings
the browser (not the desk phone); the agent answers by clicking; the Customer pane shows
the earlier chat; audio flows both ways (the browser's WebRTC stats, and the customer's
handset hears the agent speak); while muted the customer hears silence, then the agent
again; a key pressed on the keypad reaches the caller; hold plays the caller music; every
control is labelled; the agent hangs up, creates a ticket in the wrap-up and finishes it:
the ticket is the call's, and the contact is closed as completed. The call's
RTCPeerConnection has the controller's STUN and TURN servers (conftest's `ice`), the TURN
credentials this agent's own, and the browser asked both.
Screenshots of each stage are kept (tests/integration/desk_browser.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from panoramisk import Manager
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from ctl.asterisk.process import AsteriskProcess
from ctl.store.db import Database
from ctl.store.models import ContactEvent, Ticket, TicketContact
from tests.integration import desk_browser, sip, stun
from tests.integration.channels_app import add_agent, channel_settings, database, running
from tests.integration.chat_client import ChatVisitor
from tests.integration.desk_phone import (
    agent_voice,
    audio,
    available,
    browser_agent,
    desk_agent,
    register,
)
from tests.integration.harness import Caller, CtlProcess, eventually, free_port
from tests.integration.media_phone import MediaPhone
from tests.integration.test_ivr import contact_of
from tests.integration.test_voice_queue import QUEUE_NUMBER, new_agent, ring

DESK_CALL = "1212"  # conftest: flow desk-call, into queue "desk" (which has wrap-up)
FLOW = """name: desk-call
start: menu
steps:
  menu:
    menu:
      prompt: [{play: "sound:silence/1"}]
      choices: {"0": agent}
      timeout: 10
      retries: 0
  agent:
    enqueue: {queue: desk}
    on: {completed: goodbye}
  goodbye:
    hangup: {}
"""


@pytest.fixture
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browser]:
    voice = await agent_voice(tmp_path_factory.mktemp("voice"))
    async with desk_browser.chromium(microphone=voice) as b:
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


async def publish_flow(env: dict[str, str], ctl: CtlProcess, folder: Path) -> None:
    path = folder / "desk-call.yaml"
    path.write_text(FLOW)
    await sip.ctl_command(env, "flows", "publish", str(path))

    async def taken() -> bool:
        health = await ctl.health()
        return bool(health and "desk-call" in health["checks"]["flows"]["versions"])

    await eventually(taken, 10, "ctl to take flow desk-call")


async def earlier_chat(base: str, http: aiohttp.ClientSession, number: str) -> str:
    """The customer chats (the widget's pre-chat form with their phone) and leaves."""
    visitor = ChatVisitor(base, http)
    await visitor.connect()
    await visitor.start(name="Liu Yang", phone=number)
    await visitor.say("my router keeps rebooting", "c1")
    assert visitor.contact is not None
    await visitor.send({"type": "leave"})
    await visitor.next("state", state="closed", reason="customer_left")
    await visitor.drop()
    return visitor.contact


async def uses_ice(page: Page, ice: tuple[stun.StunTurn, list[dict[str, Any]]],
                   username: str) -> None:
    """The call's RTCPeerConnection has the controller's STUN and TURN servers, the TURN
    credentials this agent's, and the browser asked both."""
    stun_turn, servers = ice
    used = await page.evaluate(
        "() => window.peerConnections.at(-1).getConfiguration().iceServers")
    assert [s["urls"] for s in used] == [s["urls"] for s in servers]
    turn_user = used[1]["username"]
    expiry, _, user = turn_user.partition(":")
    assert user == f"webrtc-{username}" and 3500 < int(expiry) - time.time() <= 3600
    assert stun_turn.bindings > 0  # the browser asked the STUN server its address
    assert (turn_user, True) in stun_turn.allocations  # and TURN, with those credentials


async def sees_earlier_chat(page: Page, chat: str) -> None:
    pane = page.locator("[data-region=customer]")
    await pane.get_by_role("heading", name="Liu Yang").wait_for()
    entry = pane.locator(f".c360-entry[data-id='{chat}']")
    await entry.locator("summary").click()
    await entry.get_by_text("my router keeps rebooting").wait_for()
    await desk_browser.screenshot(page, "desk-call-customer")


async def talks_both_ways(page: Page, phone: MediaPhone) -> None:
    """The caller speaks (the handset's tone) and the browser receives it; the agent
    speaks (the fake microphone) and the caller's handset hears it."""
    phone.talking = True

    async def flowing() -> dict[str, Any] | None:
        now = await audio(page)
        return now if now["received"] > 25 and now["bytes"] > 0 and now["sent"] > 25 else None

    first = await eventually(flowing, 15, "audio both ways in the browser")

    async def grown() -> dict[str, Any] | None:
        now = await audio(page)
        return now if now["received"] > first["received"] and now["sent"] > first["sent"] \
            else None

    await eventually(grown, 10, "audio still flowing")
    phone.talking = False
    phone.mark()
    await phone.hears()


async def mutes(page: Page, phone: MediaPhone) -> None:
    """Muted, the caller hears silence (JsSIP disables the track: RTP goes on, silent);
    unmuted, the agent again."""
    mute = page.locator(".softphone button.mute")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "true")
    await phone.quiet(10)  # what was on its way before the click is in
    phone.mark()
    await phone.quiet(100)  # two seconds of the agent's speech, and none of it heard
    assert phone.loud == 0, f"the caller heard {phone.loud} loud frames while muted"
    await desk_browser.screenshot(page, "desk-call-muted")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "false")
    phone.mark()
    await phone.hears()


async def keypad_and_hold(page: Page, phone: MediaPhone, theirs: str,
                          moh: tuple[Counter[str], Counter[str]]) -> None:
    """A key on the keypad reaches the caller's handset (RFC 4733 through the bridge);
    hold plays the caller music until the agent takes the call back."""
    await page.click(".softphone button.keys")
    await page.click(".softphone .keypad button[data-key='5']")
    await phone.hears_key("5")
    await page.wait_for_function(
        "() => Number(document.querySelector('.softphone .timer').dataset.seconds) >= 1")
    await desk_browser.screenshot(page, "desk-call-talking")
    music, music_stops = moh
    held = music[theirs]
    await page.click(".softphone button.hold")
    await eventually(lambda: _gt(music[theirs], held), 10, "music for the held caller")
    assert await page.get_attribute(".softphone button.hold", "aria-pressed") == "true"
    stopped = music_stops[theirs]
    await page.click(".softphone button.hold")
    await eventually(lambda: _gt(music_stops[theirs], stopped), 10, "the music to stop")


async def wraps_up_with_a_ticket(page: Page, contact: str) -> None:
    """After the hang-up the call's conversation is in wrap-up: a ticket from it, a
    disposition, and Wrap-up done."""
    tab = page.locator(f".conv-tab[data-contact='{contact}']")
    await page.locator(".wrapup button.wrapup-done").wait_for()
    await expect(tab).to_have_attribute("data-state", "wrapup")
    await page.click(".wrapup button.new-ticket")
    await page.fill(f"#ticket-subject-{contact}", "Router keeps rebooting")
    await page.select_option(f"#ticket-priority-{contact}", "high")
    await page.click(f"#ticket-{contact} button[type=submit]")
    await page.wait_for_selector(".wrapup .note:has-text('created')")
    await page.fill(f"#disposition-{contact}", "follow_up")
    await page.fill(f"#notes-{contact}", "sending a replacement router")
    assert await desk_browser.unlabelled(page) == []  # the wrap-up and its ticket form
    await desk_browser.screenshot(page, "desk-call-wrapup")
    await page.click(".wrapup button.wrapup-done")
    await tab.wait_for(state="detached")


async def call_record(db: Database, contact: str) -> tuple[list[ContactEvent], list[Any]]:
    """The contact's events, and the tickets linked to it."""
    async with db.session(readonly=True) as s:
        events = list(await s.scalars(select(ContactEvent).where(
            ContactEvent.contact_id == contact).order_by(ContactEvent.id)))
        tickets = list((await s.execute(
            select(Ticket.subject, Ticket.priority, Ticket.customer_id, Ticket.channel)
            .join(TicketContact, TicketContact.ticket_id == Ticket.id)
            .where(TicketContact.contact_id == contact))).all())
    return events, tickets


async def test_agent_answers_a_queued_call_in_the_browser_softphone(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller, browser: Browser,
        http: aiohttp.ClientSession, tmp_path: Path,
        moh: tuple[Counter[str], Counter[str]],
        ice: tuple[stun.StunTurn, list[dict[str, Any]]]) -> None:
    env = {**os.environ, **ast_env, **backend}
    base = f"http://127.0.0.1:{ctl.port}"
    number = f"+1555126{uuid.uuid4().int % 10000:04d}"
    (username, password), chat, _ = await asyncio.gather(
        browser_agent(env, "desk"), earlier_chat(base, http, number),
        publish_flow(env, ctl, tmp_path))
    phone = await MediaPhone(free_port(socket.SOCK_DGRAM)).open()  # the customer's
    # The agent's desk phone is registered too (at a port nobody answers on): the offer
    # must ring the browser, or the test never sees it ringing.
    await register(asterisk.cfg.sip_port, username, password, free_port(socket.SOCK_DGRAM))
    context, page, errors = await desk_agent(browser, base, username, password)
    assert await caller.ari.endpoint_online("PJSIP", f"webrtc-{username}")
    await page.evaluate("""() => { window.answered = null;
        window.desk.on("phone:answered", (d) => { window.answered = d; }); }""")
    async with http.get(f"{base}/api/v1/me/phone") as r:
        assert r.status == 401  # the account is its agent's only
    await available(page)

    theirs = await caller.dial_in(phone.host, phone.port, DESK_CALL, caller_id=number)
    try:
        await contact_of(db, theirs, ("ivr",))  # ctl has the call: the key reaches its menu
        await phone.press("0")
        await page.wait_for_selector(".softphone .call[data-state=ringing]", timeout=30000)
        await desk_browser.screenshot(page, "desk-call-ringing")
        await page.click(".softphone button.answer")
        await page.wait_for_selector("[data-region=phone][data-call=talking]")
        contact = await contact_of(db, theirs, ("assigned",))
        assert (await page.evaluate("window.answered"))["contact_id"] == contact.id
        await uses_ice(page, ice, username)

        await sees_earlier_chat(page, chat)
        async with caller.explains_audio():
            await talks_both_ways(page, phone)
            await mutes(page, phone)
        await keypad_and_hold(page, phone, theirs, moh)
        assert await desk_browser.unlabelled(page) == []

        await page.click(".softphone button.hangup")
        await page.wait_for_selector("[data-region=phone][data-call=idle]")
        await wraps_up_with_a_ticket(page, contact.id)
        closed = await contact_of(db, theirs, ("closed",))
        assert closed.id == contact.id and closed.close_reason == "completed"
        events, tickets = await call_record(db, contact.id)
        states = [e.to_state for e in events if e.kind == "state"]
        assert states[-4:] == ["offered", "assigned", "wrapup", "closed"], states
        assert [(e.data["disposition"], e.data["notes"]) for e in events
                if e.kind == "disposition"] == [("follow_up", "sending a replacement router")]
        assert tickets == [("Router keeps rebooting", "high", contact.customer_id, "voice")]
        await asyncio.wait_for(phone.ended.wait(), 15)  # the flow said goodbye
        await desk_browser.screenshot(page, "desk-call-done")
        assert not errors, errors
    finally:  # whatever failed, no call of ours outlives the test
        with contextlib.suppress(Exception):
            await caller.ari.hangup(theirs)
        await phone.close()
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
