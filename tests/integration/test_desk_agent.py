"""An agent's day in the desk, in a real browser on the real app (no Asterisk: API
contacts): the login and the panel, the lock after failed logins, the session cookie and
its CSRF token, state with reasons, the offer toast with its countdown answered from the
keyboard, wrap-up, a dropped push socket that re-syncs without a reload, and the Chinese
UI. Every page: no console errors, every control labelled."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from ctl.agents.service import RoutingChanges
from tests.integration.agent_api import Panel
from tests.integration.channels_app import App, add_agent, channel_settings, database, running
from tests.integration.desk_browser import (
    ConsoleErrors,
    login,
    ready,
    screenshot,
    unlabelled,
)


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("desk-agent")
    async with database("sqlite", data_dir) as url:
        settings = channel_settings(data_dir, url)
        settings.routing.queues[0].wrapup_seconds = 600  # "general": wrap-up until done
        settings.routing.queues[1].offer_timeout = 3  # "mail": offers expire quickly
        async with running(settings) as a:
            yield a


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as h:
        yield h


async def agent(app: App, role: str = "agent", queue: str = "general") -> tuple[str, str]:
    user = f"a{uuid.uuid4().hex[:8]}"
    return user, await add_agent(app.services, user, role=role, queues=(queue,))


async def agent_id(app: App, username: str) -> str:
    return (await app.services.agents.get(username)).id


async def clean(page: Page, errors: ConsoleErrors, name: str) -> None:
    """Every page ends the same way: a screenshot, labelled controls, a quiet console."""
    await screenshot(page, name)
    assert await unlabelled(page) == []
    assert errors == []


async def test_lock_after_failed_logins(app: App, browser: Browser) -> None:
    user, password = await agent(app)
    page = await browser.new_page()
    errors = ConsoleErrors(page)
    await page.goto(f"{app.base}/desk/login?lang=en")
    after = app.settings.desk.lockout_after
    for attempt in range(1, after + 1):
        await page.fill("#username", user)
        await page.fill("#password", f"guess {attempt}")
        await page.click("form.login-form button[type=submit]")
        message = await page.locator("#login-error").inner_text()
        if attempt < after:
            assert message == "Wrong username or password."
    assert re.fullmatch(r"Too many failed logins: this login is locked until "
                        r"\d\d:\d\d:\d\d UTC\.", message), message
    await page.fill("#password", password)  # the right one: still locked
    await page.click("form.login-form button[type=submit]")
    assert "locked until" in await page.locator("#login-error").inner_text()
    assert page.url.endswith("/desk/login?lang=en")
    errors.allow(r"status of (401|429) .*/desk/login")  # the refused logins themselves
    await clean(page, errors, "desk-locked")
    await page.close()


async def test_offer_toast_keyboard_and_reconnect(app: App, browser: Browser,
                                                  http: aiohttp.ClientSession) -> None:
    user, password = await agent(app)
    sup_user, sup_password = await agent(app, "supervisor")
    supervisor = await Panel(app.base, http).login(sup_user, sup_password)
    page = await browser.new_page()
    errors = ConsoleErrors(page)
    await login(page, app.base, user, password)

    # Without the CSRF header the session cookie changes nothing.
    status = await page.evaluate("""async () => (await fetch('/api/v1/me/state', {
        method: 'PUT', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({state: 'available'})})).status""")
    assert status == 403
    errors.allow(r"status of 403 .*/api/v1/me/state")

    state = page.locator("#agent-state")
    await state.select_option("away:lunch")
    await expect(page.locator("[data-region=topbar]")).to_have_attribute("data-state", "away")
    me = await app.services.routing.agent_status(await page.evaluate("desk.me.agent_id"))
    assert (me["status"], me["reason"]) == ("away", "lunch")
    await state.select_option("available")
    await expect(page.locator("[data-region=topbar]")).to_have_attribute(
        "data-state", "available")

    # (the expression must not end in a function: evaluate() would call it)
    await page.evaluate("window.accepted = []; "
                        "desk.on('offer:accepted', (d) => accepted.push(d)); null")
    created = await supervisor.call("POST", "/api/v1/contacts", {
        "queue": "general", "channel": "api",
        "customer": {"kind": "email", "value": f"{user}@example.cn", "name": "Li Lei"}},
        expect=201)
    toast = page.locator(".toast[data-channel=api]")
    await expect(toast).to_contain_text("Customer: Li Lei")
    await expect(toast).to_contain_text("Queue: general")
    countdown = toast.locator(".countdown")
    first = await countdown.inner_text()
    assert re.fullmatch(r"(30|29) s to answer", first), first
    await expect(countdown).not_to_have_text(first)  # it counts down
    assert await page.evaluate("document.activeElement.className") == "accept"
    assert await page.title() == "(1) Offers · ctl agent desktop"
    await clean(page, errors, "desk-offer")
    await page.keyboard.press("Enter")
    await expect(toast).to_have_count(0)
    await expect(page).to_have_title("ctl agent desktop")
    await page.wait_for_function("() => accepted.length > 0")
    accepted = await page.evaluate("accepted")
    assert [(a["contact_id"], a["channel"]) for a in accepted] == [(created["id"], "api")]
    mine = await app.services.routing.agent_status(await page.evaluate("desk.me.agent_id"))
    assert [c["id"] for c in mine["contacts"]] == [created["id"]]
    # Completing it starts wrap-up, which the top bar shows until it is done.
    await page.evaluate(f"desk.api('POST', '/api/v1/contacts/{created['id']}/complete')")
    wrapup = page.locator("[data-region=topbar] .wrapup")
    await expect(wrapup).to_be_visible()
    await expect(wrapup).to_have_text("Wrap-up")
    await page.evaluate(f"desk.api('POST', '/api/v1/contacts/{created['id']}/wrapup-done')")
    await expect(wrapup).to_be_hidden()

    # Escape declines.
    second = await supervisor.call("POST", "/api/v1/contacts",
                                   {"queue": "general", "channel": "api"}, expect=201)
    toast = page.locator(".toast[data-channel=api]")
    await expect(toast).to_contain_text("Customer: not known yet")
    offer_id = await toast.get_attribute("data-offer")
    await page.keyboard.press("Escape")
    await expect(toast).to_have_count(0)
    mine = await app.services.routing.agent_status(await page.evaluate("desk.me.agent_id"))
    assert second["id"] not in [c["id"] for c in mine["contacts"]] and not mine["offers"]
    status = await page.evaluate(f"fetch('/api/v1/offers/{offer_id}').then(r => r.status)")
    assert status == 404
    errors.allow(rf"status of 404 .*/api/v1/offers/{offer_id}")

    # The push socket drops; meanwhile the agent's state changes elsewhere (another tab,
    # through the API); the desk reconnects by itself and shows the server's state.
    held: asyncio.Queue[WebSocketRoute] = asyncio.Queue()
    await page.route_web_socket(re.compile(r".*/api/v1/ws$"), held.put_nowait)
    await page.evaluate("window.opens = 0; desk.on('ws:open', () => opens++); "
                        "desk.socket.close()")
    await expect(page.locator("[data-region=topbar] .conn")).to_contain_text(
        "Connection lost")
    route = await asyncio.wait_for(held.get(), 15)  # the desk is trying again
    other = await Panel(app.base, http).login(user, password)
    await other.state("away", "meeting")
    assert await state.input_value() == "available"  # nothing pushed while away
    route.connect_to_server()
    await expect(state).to_have_value("away:meeting")
    assert await page.evaluate("opens") == 1
    await expect(page.locator("[data-region=topbar] .conn")).to_have_text("")
    await clean(page, errors, "desk-reconnected")
    await page.close()


async def test_chinese_ui(app: App, browser: Browser) -> None:
    user, password = await agent(app)
    page = await browser.new_page(locale="zh-CN", extra_http_headers={
        "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    errors = ConsoleErrors(page)
    await page.goto(f"{app.base}/desk/login")
    await expect(page.locator("form.login-form button")).to_have_text("登录")
    await expect(page.locator("label[for=password]")).to_have_text("密码")
    await login(page, app.base, user, password)
    assert await page.get_attribute("html", "lang") == "zh-CN"
    await expect(page.locator("label[for=agent-state]")).to_have_text("我的状态")
    options = await page.locator("#agent-state option").all_inner_texts()
    assert options[:3] == ["空闲", "离开", "离开：休息"]  # noqa: RUF001 - Chinese colon
    assert options[-1] == "离线"
    await expect(page.locator("button.logout")).to_have_text("退出登录")
    await clean(page, errors, "desk-zh-CN")
    # English chosen in the desk sticks to the agent (another browser, another day).
    await page.get_by_role("button", name="English").click()
    await expect(page.locator("label[for=agent-state]")).to_have_text("My state")
    await page.locator("button.logout").click()
    await page.wait_for_url(f"{app.base}/desk/login")
    await login(page, app.base, user, password)
    await expect(page.locator("label[for=agent-state]")).to_have_text("My state")
    assert errors == []
    await page.close()


async def test_login_shows_the_panel(app: App, browser: Browser) -> None:
    user, password = await agent(app)
    page = await (await browser.new_context()).new_page()
    errors = ConsoleErrors(page)
    await page.goto(f"{app.base}/desk/")
    assert page.url == f"{app.base}/desk/login"  # no session: the login form
    await login(page, app.base, user, password)
    topbar = page.locator("[data-region=topbar]")
    await topbar.get_by_text(user.title()).wait_for()
    for region in ("phone", "conversations", "customer", "assist", "main"):
        assert await page.locator(f"[data-region={region}]").count() == 1
    assert await page.evaluate("desk.me.username") == user
    await clean(page, errors, "desk-panel")
    # A second tab of the same session; logging out in the first ends both.
    other = await page.context.new_page()
    other_errors = ConsoleErrors(other)
    await other.goto(f"{app.base}/desk/")
    await ready(other)
    await page.locator("button.logout").click()
    await page.wait_for_url(f"{app.base}/desk/login")
    await other.wait_for_url(f"{app.base}/desk/login")
    me = await app.services.routing.agent_status(await agent_id(app, user))
    assert me["status"] == "offline"
    assert errors == [] and other_errors == []
    await page.context.close()


async def test_cookie_needs_csrf_and_a_same_site_websocket(app: App) -> None:
    user, password = await agent(app)
    # unsafe: the jar keeps cookies of an IP address host (127.0.0.1) too
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{app.base}/desk/login", allow_redirects=False,
                             data={"username": user, "password": password}) as r:
            assert r.status == 303
            cookie = r.cookies["ctl_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
            assert not cookie["secure"]  # plain http: a Secure cookie would never return
        async with http.get(f"{app.base}/desk/") as r:
            page = await r.text()
            assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        csrf = page.split('"csrf": "')[1].split('"')[0]
        state = {"state": "away", "reason": "break"}
        async with http.put(f"{app.base}/api/v1/me/state", json=state) as r:
            assert r.status == 403
            assert "missing CSRF token" in (await r.json())["message"]
        async with http.put(f"{app.base}/api/v1/me/state", json=state,
                            headers={"X-CSRF-Token": csrf[::-1]}) as r:
            assert r.status == 403 and "wrong CSRF token" in (await r.json())["message"]
        async with http.put(f"{app.base}/api/v1/me/state", json=state,
                            headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200 and (await r.json())["reason"] == "break"
        async with http.get(f"{app.base}/api/v1/me") as r:  # safe methods need no token
            assert r.status == 200
        # A page of another site opening the websocket: the cookie alone is not enough.
        async with http.ws_connect(f"{app.base}/api/v1/ws",
                                   origin="https://evil.example") as ws:
            msg = await ws.receive_json()
            assert msg["type"] == "error" and "evil.example" in msg["message"]
        async with http.ws_connect(f"{app.base}/api/v1/ws",
                                   origin=app.base) as ws:
            msg = await ws.receive_json()
            assert msg["type"] == "hello" and msg["status"] == "away"
        async with http.post(f"{app.base}/api/v1/logout",
                             headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        async with http.get(f"{app.base}/api/v1/me") as r:
            assert r.status == 401
        # Static files are revalidated (a 304 when unchanged), never used stale.
        async with http.get(f"{app.base}/desk/static/core.js") as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"
            etag = r.headers["ETag"]
        async with http.get(f"{app.base}/desk/static/core.js",
                            headers={"If-None-Match": etag}) as r:
            assert r.status == 304
        # Behind a TLS-terminating proxy the cookie is Secure.
        async with http.post(f"{app.base}/desk/login", allow_redirects=False,
                             headers={"X-Forwarded-Proto": "https"},
                             data={"username": user, "password": password}) as r:
            assert r.status == 303 and r.cookies["ctl_session"]["secure"]
        # Login forms of other sites are refused (login CSRF).
        async with http.post(f"{app.base}/desk/login", allow_redirects=False,
                             headers={"Origin": "https://evil.example"},
                             data={"username": user, "password": password}) as r:
            assert r.status == 403


async def test_offer_toast_goes_when_the_offer_expires(app: App, browser: Browser,
                                                       http: aiohttp.ClientSession) -> None:
    user, password = await agent(app, queue="mail")
    sup_user, sup_password = await agent(app, "supervisor")
    supervisor = await Panel(app.base, http).login(sup_user, sup_password)
    page = await browser.new_page()
    errors = ConsoleErrors(page)
    await login(page, app.base, user, password)
    await page.locator("#agent-state").select_option("available")
    await expect(page.locator("[data-region=topbar]")).to_have_attribute(
        "data-state", "available")
    await supervisor.call("POST", "/api/v1/contacts", {"queue": "mail", "channel": "api"},
                          expect=201)
    toast = page.locator(".toast[data-channel=api]")
    await expect(toast.locator(".countdown")).to_have_text(re.compile(r"[123] s to answer"))
    await expect(toast).to_have_count(0, timeout=10_000)  # nobody answered: it went
    me = await app.services.routing.agent_status(await agent_id(app, user))
    assert me["offers"] == [] and me["contacts"] == []
    await clean(page, errors, "desk-offer-expired")
    await page.close()


async def test_voice_offer_is_answered_on_the_phone(app: App, browser: Browser,
                                                    http: aiohttp.ClientSession) -> None:
    """A call's offer is accepted by answering the phone: the toast's Accept asks the
    softphone (`phone:answer`), and routing's Assigned (sent when the agent's leg
    answers) takes the toast away and tells the desk `offer:accepted`."""
    user, password = await agent(app)
    await app.services.agents.configure(user, RoutingChanges(capacity={"voice": 1}))
    sup_user, sup_password = await agent(app, "supervisor")
    supervisor = await Panel(app.base, http).login(sup_user, sup_password)
    page = await browser.new_page()
    errors = ConsoleErrors(page)
    await login(page, app.base, user, password)
    await page.evaluate("window.seen = []; for (const t of ['phone:answer', 'offer:accepted'])"
                        " desk.on(t, (d) => seen.push([t, d])); null")
    await page.locator("#agent-state").select_option("available")
    created = await supervisor.call("POST", "/api/v1/contacts",
                                    {"queue": "general", "channel": "voice"}, expect=201)
    toast = page.locator(".toast[data-channel=voice]")
    await expect(toast).to_contain_text("New call")
    await expect(toast).to_contain_text("Accept answers the phone.")
    offer_id = await toast.get_attribute("data-offer")
    await page.keyboard.press("Enter")
    await page.wait_for_function("() => seen.length === 1")
    assert await page.evaluate("seen") == [
        ["phone:answer", {"offer_id": offer_id, "contact_id": created["id"]}]]
    await expect(toast).to_have_count(1)  # the REST accept is not the way for a call
    await app.services.routing.accept(await agent_id(app, user), str(offer_id))  # answered
    await expect(toast).to_have_count(0)
    await page.wait_for_function("() => seen.length === 2")
    assert (await page.evaluate("seen"))[1] == [
        "offer:accepted", {"offer_id": offer_id, "contact_id": created["id"],
                           "channel": "voice"}]
    await clean(page, errors, "desk-voice-offer")
    await page.close()
