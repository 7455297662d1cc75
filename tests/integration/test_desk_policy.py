"""The desk's Content-Security-Policy in a real browser: its pages carry the policy and
its companions; an agent works a chat from the widget (whose demo page has its own
policy), replies, and plays a recording in the customer 360 without one violation; a
script injected into the page does not run, and the browser reports it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.integration.channels_app import App, add_agent, channel_settings, database, running
from tests.integration.desk_browser import ConsoleErrors, login, screenshot
from tests.integration.test_desk_customer import customer_with_history, select

WAIT = 20_000
# Every violation the page's policy reports, collected before any page script runs.
VIOLATIONS = """window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
  {directive: e.effectiveDirective, blocked: e.blockedURI, source: e.sourceFile || ''}));"""


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("desk-policy")
    async with database("sqlite", data_dir) as url, running(channel_settings(data_dir, url)) as a:
        yield a


async def page_in(browser: Browser) -> tuple[BrowserContext, Page, ConsoleErrors]:
    context = await browser.new_context()
    await context.add_init_script(VIOLATIONS)
    page = await context.new_page()
    return context, page, ConsoleErrors(page)


async def test_pages_carry_the_policy_and_its_companions(app: App) -> None:
    sip = f"ws://127.0.0.1:{app.settings.asterisk.http_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{app.base}/desk/login") as r:
            desk = r.headers
        async with http.get(f"{app.base}/chat/") as r:
            chat = r.headers
    policy = {d.split()[0]: d.split()[1:] for d in desk["Content-Security-Policy"].split("; ")}
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["connect-src"] == ["'self'", sip]  # the softphone's SIP websocket
    assert policy["media-src"] == ["'self'"]
    for headers in (desk, chat):
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
    assert "script-src 'self';" in chat["Content-Security-Policy"]


async def test_the_panel_works_under_its_policy_and_injected_script_does_not_run(
        app: App, browser: Browser) -> None:
    user = f"p{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user)
    c = await customer_with_history(app)  # before anyone is available to be offered its chat
    agent_ctx, agent, agent_errors = await page_in(browser)
    visitor_ctx, visitor, visitor_errors = await page_in(browser)
    await login(agent, app.base, user, password)
    await agent.select_option("#agent-state", "available")
    await agent.wait_for_selector("[data-region=topbar][data-state=available]")

    # A chat from the widget on its demo page; the agent takes it and answers.
    await visitor.goto(f"{app.base}/chat/")
    await visitor.fill("#ctl-chat form [name=name]", "Zhao Lei")
    await visitor.fill("#ctl-chat form [name=email]", f"{user}@example.cn")
    await visitor.fill("#ctl-chat form [name=text]", "hello, my order?")
    await visitor.click("#ctl-chat form button")
    toast = agent.locator(".toast[data-channel=chat]")
    await toast.get_by_text("Zhao Lei").wait_for(timeout=WAIT)  # who it is, first
    await toast.locator(".accept").press("Enter")
    await toast.wait_for(state="detached")
    box = agent.locator(".composer textarea")
    await box.fill("Let me look")
    await box.press("Enter")
    await visitor.wait_for_selector("#ctl-chat .m.agent:has-text('Let me look')", timeout=WAIT)

    # The customer 360 of a caller: the recording plays (media-src).
    await select(agent, c["customer"], c["call"])
    voice = agent.locator(f"[data-region=customer] .c360-entry[data-id='{c['call']}']")
    await voice.locator("summary").first.click()
    played = await voice.locator("audio").evaluate("""(a) => new Promise((ok, fail) => {
        a.addEventListener('error', () => fail(new Error('audio error ' + a.error.code)));
        a.addEventListener('loadedmetadata', () => ok(a.duration), {once: true});
        a.preload = 'auto'; a.load();
    })""")
    assert played > 1.9
    assert await agent.evaluate("window.__violations") == []
    assert await visitor.evaluate("window.__violations") == []

    # Script injected into the page (as an escaping mistake would let it in) is refused.
    await agent.evaluate("""() => {
        const s = document.createElement('script');
        s.textContent = 'window.__injected = true';
        document.body.append(s);
        document.body.insertAdjacentHTML('beforeend',
            '<img src="/desk/static/icon.svg" onload="window.__injected = true">');
    }""")
    await agent.wait_for_function("() => window.__violations.length >= 2")
    assert await agent.evaluate("window.__injected") is None
    directives = {v["directive"] for v in await agent.evaluate("window.__violations")}
    assert directives == {"script-src-elem", "script-src-attr"}, directives
    await screenshot(agent, "desk-policy")
    agent_errors.allow("Content Security Policy")  # the two refusals just provoked
    # The assist pane asks for suggestions on the selected call, which is not this agent's.
    agent_errors.allow(r"403 \(Forbidden\).*/api/v1/contacts/[0-9a-f]+/suggestions")
    assert agent_errors == [] and visitor_errors == []
    await agent.evaluate("desk.logout()")
    await agent.wait_for_url(f"{app.base}/desk/login")
    await agent_ctx.close()
    await visitor_ctx.close()
