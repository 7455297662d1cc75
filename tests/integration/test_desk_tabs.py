"""Two desk tabs of one agent in one browser: the first owns the softphone, the second
says the phone is in the other tab, and takes over when that tab closes; the switch is
one setting for both. The app alone (no Asterisk): the owner's phone says the service
is unavailable, which only the owner ever asks. test_desk_phone.py has the call."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from tests.integration.channels_app import App, add_agent, channel_settings, database, running
from tests.integration.desk_browser import ConsoleErrors, login, ready, screenshot

PHONE = "[data-region=phone]"


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("desk-tabs")
    async with database("sqlite", data_dir) as url, running(channel_settings(data_dir, url)) as a:
        yield a


async def phone_is(page: Page, state: str) -> None:
    await expect(page.locator(PHONE)).to_have_attribute("data-registration", state)


async def test_one_tab_owns_the_phone_and_another_takes_over(app: App, browser: Browser
                                                             ) -> None:
    user = f"t{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user)
    context = await browser.new_context()
    first = await context.new_page()
    errors = [ConsoleErrors(first)]
    await login(first, app.base, user, password)
    await phone_is(first, "unavailable")  # the owner: it asked for the account
    second = await context.new_page()
    errors.append(ConsoleErrors(second))
    await second.goto(f"{app.base}/desk/")
    await ready(second)
    await phone_is(second, "elsewhere")
    await expect(second.locator(".softphone .registration")).to_contain_text("another tab")
    await screenshot(second, "desk-phone-other-tab")

    await first.close()  # the lock passes to the waiting tab
    await phone_is(second, "unavailable")

    # The switch is one setting for the browser: off in the owner turns off the waiting
    # tab too; on again in the waiting tab makes it the owner.
    third = await context.new_page()
    errors.append(ConsoleErrors(third))
    await third.goto(f"{app.base}/desk/")
    await ready(third)
    await phone_is(third, "elsewhere")
    await second.click("#softphone-enabled")
    await phone_is(second, "off")
    await phone_is(third, "off")
    assert not await third.is_checked("#softphone-enabled")
    await third.click("#softphone-enabled")
    await phone_is(third, "unavailable")
    await phone_is(second, "elsewhere")
    assert await second.is_checked("#softphone-enabled")
    assert all(e == [] for e in errors), errors
    await context.close()
