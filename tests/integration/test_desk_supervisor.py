"""The supervisor view in a real browser on the real app (no Asterisk): queue tiles update
live when a contact enters the queue, an alert appears and clears, a customer's angry
message shows as a negative badge on its contact and its intent in "frequent issues", a
supervisor takes a conversation over from its agent; agents do not get the view."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from ctl.channels.contract import Inbound
from tests.integration.channels_app import (
    App,
    add_agent,
    database,
    isolated_settings,
    running,
)
from tests.integration.desk_browser import (
    ConsoleErrors,
    login,
    screenshot,
    unlabelled,
)
from tests.integration.harness import free_port

# The worker process loads the embedding model on the first text: slow on a loaded machine.
FIRST_ANALYSIS_MS = 120_000


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    data_dir: Path = tmp_path_factory.mktemp("desk-supervisor")
    async with database("sqlite", data_dir) as url:
        settings = isolated_settings(
            data_dir=data_dir, database_url=url, node_id=f"sup-{uuid.uuid4().hex[:6]}",
            asterisk={"http_port": free_port(), "ami_port": free_port()},
            # One waiting contact is already too many: the alert shows at once.
            routing={"queues": [{"name": "general", "offer_timeout": 30,
                                 "alerts": {"waiting": 0}},
                                {"name": "mail", "offer_timeout": 30}], "sticky_wait": 0})
        async with running(settings) as a:
            yield a


async def test_live_tiles_alert_and_take_over(app: App, browser: Browser) -> None:
    sup, agent = f"s{uuid.uuid4().hex[:8]}", f"a{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, sup, role="supervisor")
    agent_password = await add_agent(app.services, agent)
    agent_id = (await app.services.agents.get(agent)).id
    page = await browser.new_page()
    errors = ConsoleErrors(page)
    await login(page, app.base, sup, password)
    view = page.locator("[data-region=main] details.supervisor")
    tile = view.locator(".tile[data-queue=general]")
    await expect(tile.locator(".waiting")).to_have_text("0")
    await expect(view.locator(".alert")).to_have_count(0)

    customer = Inbound(channel="api", identity=("email", f"{agent}@example.org"),
                       address=f"{agent}@example.org", thread=f"t-{agent}", text="hello",
                       queue="general")
    contact = (await app.services.channels.receive(customer)).contact_id
    await expect(tile.locator(".waiting")).to_have_text("1")  # pushed, no reload
    alert = view.locator(".alert[data-queue=general][data-kind=waiting]")
    await expect(alert).to_be_visible()
    await expect(tile).to_have_class("tile alerting")
    await screenshot(page, "desk-supervisor-alert")

    # The agent takes it: the alert clears, the agent's row shows the contact.
    await app.services.routing.set_state(agent_id, "available")
    offer = next(o for o in app.services.core.engine.offers.values()
                 if o.contact_id == contact)
    await app.services.routing.accept(agent_id, offer.id)
    await expect(tile.locator(".waiting")).to_have_text("0")
    await expect(alert).to_have_count(0)
    row = view.locator(f"tr[data-agent='{agent_id}']")
    item = row.locator(f".contact[data-contact='{contact}']")
    take = item.locator("button")
    await expect(take).to_have_text("Take over")
    # The customer gets angry: analysed in the worker, pushed, badged in the agent's row.
    await app.services.channels.receive(replace(
        customer, text="This is unacceptable, I was charged twice for my order!"))
    mood = item.locator(".insight .mood")
    await expect(mood).to_have_text("Negative", timeout=FIRST_ANALYSIS_MS)
    await expect(mood).to_have_attribute("data-sentiment", "negative")
    await expect(item.locator(".insight .intent")).to_have_text("Billing")
    issues = view.locator("section.insights")
    await expect(issues.locator("ol.intents li[data-intent=billing] .name")
                 ).to_have_text("Billing")  # re-read from the summary after the push
    await screenshot(page, "desk-supervisor-insights")
    # The agent's panel opens once the offer is taken (its toast would race the API).
    agent_page = await browser.new_page()  # a context of its own: the agent's session
    agent_errors = ConsoleErrors(agent_page)
    await login(agent_page, app.base, agent, agent_password)
    await expect(agent_page.locator(f"#conv-tab-{contact}")).to_be_visible()
    assert await unlabelled(page) == []

    await take.focus()
    await page.keyboard.press("Enter")  # keyboard works
    await expect(row.locator(".contact")).to_have_count(0)
    sup_id = (await app.services.agents.get(sup)).id
    await expect(view.locator(f"tr[data-agent='{sup_id}'] .contact[data-contact='{contact}']")
                 ).to_be_visible()
    assert app.services.core.engine.contacts[contact].agent == sup_id
    # Told by the push, the agent's panel lets it go; the supervisor's panel has it.
    await expect(agent_page.locator(f"#conv-tab-{contact}")).to_have_count(0)
    await expect(page.locator(f"#conv-tab-{contact}")).to_be_visible()
    await screenshot(page, "desk-supervisor-taken-over")
    assert errors == [] and agent_errors == []
    await page.close()
    await agent_page.close()


async def test_agents_do_not_get_the_view(app: App, browser: Browser) -> None:
    user = f"a{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user)
    page = await browser.new_page()
    errors = ConsoleErrors(page)
    await login(page, app.base, user, password)
    assert await page.locator("details.supervisor").count() == 0
    assert errors == []
    await page.close()
