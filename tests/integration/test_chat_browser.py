"""The widget in a real browser (Debian's Chromium driven by Playwright): the pre-chat
form, a conversation with an agent, and a dropped connection that loses and repeats
nothing on screen."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from tests.integration.agent_api import Panel
from tests.integration.channels_app import App, add_agent, channel_settings, database, running


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("chat-browser")
    async with database("sqlite", data_dir) as url, \
            running(channel_settings(data_dir, url)) as a:
        yield a


async def bubbles(page: Page) -> list[str]:
    return await page.locator("#ctl-chat .m:not(.sys)").all_inner_texts()


async def test_widget_chat_and_reconnect(app: App, browser: Browser,
                                         tmp_path: Path) -> None:
    user = f"b{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user, queues=("general",))
    async with aiohttp.ClientSession() as http:
        agent = await Panel(app.base, http).login(user, password)
        await agent.listen()
        await agent.state("available")
        page = await browser.new_page()
        await page.goto(f"{app.base}/chat/")
        # Playwright's CSS selectors reach into the widget's (open) shadow root.
        await page.fill("#ctl-chat form [name=name]", "Wang Fang")
        await page.fill("#ctl-chat form [name=email]", f"{user}@example.cn")
        await page.fill("#ctl-chat form [name=text]", "你好, is anyone there?")
        await page.click("#ctl-chat form button")
        offer = await agent.next("offer")
        contact = offer["offer"]["contact_id"]
        await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
        await page.wait_for_selector("#ctl-chat .st:has-text('·')")
        await agent.call("POST", f"/api/v1/contacts/{contact}/typing", {"on": True})
        await page.wait_for_selector("#ctl-chat .typing:has-text('typing')")
        await agent.call("POST", f"/api/v1/contacts/{contact}/messages",
                         {"text": "Hello Wang, how can I help?"}, expect=201)
        await page.wait_for_selector("#ctl-chat .m.agent:has-text('how can I help')")
        await page.fill("#ctl-chat [name=text]", "my parcel is late")
        await page.press("#ctl-chat [name=text]", "Enter")
        pushed = await agent.next("message", contact=contact)
        assert pushed["message"]["text"] == "my parcel is late"
        # The connection drops; the agent writes meanwhile; the widget comes back.
        await page.evaluate("window.ctlChat.close()")
        for text in ("Checking now", "It left the depot today"):
            await agent.call("POST", f"/api/v1/contacts/{contact}/messages", {"text": text},
                             expect=201)
        await page.reload()  # a fresh page resumes the whole conversation from its token
        await page.wait_for_selector("#ctl-chat .m.agent:has-text('left the depot')")
        assert await bubbles(page) == [
            "你好, is anyone there?", "Hello Wang, how can I help?", "my parcel is late",
            "Checking now", "It left the depot today"]
        # A dropped socket (not a reload) reconnects by itself and resumes after the last
        # seq it showed.
        await page.evaluate("window.ctlChat.reconnect()")
        await agent.call("POST", f"/api/v1/contacts/{contact}/messages",
                         {"text": "Anything else?"}, expect=201)
        await page.wait_for_selector("#ctl-chat .m.agent:has-text('Anything else')")
        assert len(await bubbles(page)) == 6
        await agent.call("POST", f"/api/v1/contacts/{contact}/complete")
        await page.wait_for_selector("#ctl-chat .stars button")
        await page.click("#ctl-chat .stars button[data-score='5']")
        await page.wait_for_selector("#ctl-chat .m.sys:has-text('Thank you')")
        await page.screenshot(path=str(tmp_path / "widget.png"))
        await page.close()
        await agent.state("offline")
        await agent.close()
