"""The API's refusals in the desk's language: a zh-CN agent attaches a file of a refused
type and asks for an away reason that does not exist, and reads both in Chinese (the
server names the reason, the desk's errors.json words it); a refusal the desk has no
words for shows the server's English message."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from ctl.channels.contract import Inbound
from tests.integration.channels_app import App, add_agent, channel_settings, database, running
from tests.integration.desk_browser import ConsoleErrors, login, screenshot

WAIT = 20_000


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("desk-errors")
    async with database("sqlite", data_dir) as url, running(channel_settings(data_dir, url)) as a:
        yield a


async def test_a_chinese_desk_shows_the_servers_refusals_in_chinese(app: App,
                                                                     browser: Browser) -> None:
    user = f"z{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user)
    page = await browser.new_page()
    errors = ConsoleErrors(page)
    await login(page, app.base, user, password, lang="zh-CN")
    await page.select_option("#agent-state", "available")
    await page.wait_for_selector("[data-region=topbar][data-state=available]")
    await app.services.channels.receive(Inbound(
        channel="chat", identity=("email", f"{user}@example.cn"), address=uuid.uuid4().hex,
        text="你好, 我的订单呢?", name="Chen Jing", thread=uuid.uuid4().hex,
        external_id=uuid.uuid4().hex))
    toast = page.locator(".toast[data-channel=chat]")
    await toast.get_by_text("Chen Jing").wait_for(timeout=WAIT)
    await toast.locator(".accept").press("Enter")
    await toast.wait_for(state="detached")

    # An attachment of a type the channel refuses (422, reason attachment_type).
    await page.locator(".composer input[type=file]").set_input_files([
        {"name": "tool.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ"}])
    box = page.locator(".composer textarea")
    await box.fill("请运行这个")
    await box.press("Enter")
    refused = page.locator(".composer .error")
    zh = "附件 tool.exe：不接受 application/x-msdownload 类型的文件。"  # noqa: RUF001
    await refused.get_by_text(zh).wait_for()
    await screenshot(page, "desk-error-zh")

    # A wrong state change, through the desk's own API call (reason away_reason) ...
    said = await page.evaluate("""() => desk.api('PUT', '/api/v1/me/state',
        {state: 'away', reason: 'nap'}).then(() => 'accepted', (e) => e.message)""")
    assert said == "未知的离开原因 nap。"
    # ... and one without a reason the desk knows: the server's English words.
    said = await page.evaluate("""() => desk.api('PUT', '/api/v1/me/language',
        {language: 'fr'}).then(() => 'accepted', (e) => e.message)""")
    assert said == "language 'fr': use one of en, zh-CN or null"
    errors.allow(r"status of (422|400)")  # the refusals provoked above
    assert errors == []
    await page.close()
