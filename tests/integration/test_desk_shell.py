"""The agent desktop's shell in a real browser on the real app: login, the panel, the
session cookie and its CSRF token."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import Browser

from tests.integration.channels_app import App, add_agent, channel_settings, database, running
from tests.integration.desk_browser import (
    ConsoleErrors,
    chromium,
    login,
    screenshot,
    unlabelled,
)


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("desk-shell")
    async with database("sqlite", data_dir) as url, \
            running(channel_settings(data_dir, url)) as a:
        yield a


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


async def test_login_shows_the_panel(app: App, browser: Browser) -> None:
    user = f"d{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user)
    page = await browser.new_page()
    errors = ConsoleErrors(page)
    await page.goto(f"{app.base}/desk/")
    assert page.url == f"{app.base}/desk/login"  # no session: the login form
    await login(page, app.base, user, password)
    topbar = page.locator("[data-region=topbar]")
    await topbar.get_by_text(user.title()).wait_for()
    for region in ("phone", "conversations", "customer", "assist", "main"):
        assert await page.locator(f"[data-region={region}]").count() == 1
    assert await page.evaluate("desk.me.username") == user
    assert await unlabelled(page) == []
    await screenshot(page, "desk-panel")
    assert errors == []
    await page.close()


async def test_cookie_needs_csrf_and_a_same_site_websocket(app: App) -> None:
    user = f"d{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user)
    # unsafe: the jar keeps cookies of an IP address host (127.0.0.1) too
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{app.base}/desk/login", allow_redirects=False,
                             data={"username": user, "password": password}) as r:
            assert r.status == 303
            cookie = r.cookies["ctl_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
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
        # Login forms of other sites are refused (login CSRF).
        async with http.post(f"{app.base}/desk/login", allow_redirects=False,
                             headers={"Origin": "https://evil.example"},
                             data={"username": user, "password": password}) as r:
            assert r.status == 403

