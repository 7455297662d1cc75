"""The desk's conversation panel in a real browser (Debian's Chromium), against the real
app and no Asterisk: a visitor chats from the widget in a second browser context, the
agent takes the chat, replies flow both ways, the agent's network drops (a TCP proxy cut
between the agent's browser and ctl) while the visitor writes, and after the reconnect
the agent's screen has every message once; an email arrives by SMTP in a second tab and
the agent answers it quoting the customer, threaded; a ticket from the chat; wrap-up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page
from sqlalchemy import select

from ctl.store.models import Contact, ContactEvent, Ticket, TicketContact
from tests.integration import test_email
from tests.integration.channels_app import App, add_agent, channel_settings, database, running
from tests.integration.desk_browser import (
    ConsoleErrors,
    login,
    screenshot,
    unlabelled,
)
from tests.integration.harness import free_port
from tests.integration.proxy import CuttableProxy
from tests.integration.test_email import OURS, Relay, new_mail, smtp_send

relay = test_email.relay  # the email tests' outbound MTA: a fixture here too
WIDGET_KEY = "'ctl-chat:' + location.host"  # where the widget keeps its token
WAIT = 20_000  # ms: the longest any step may take (a reconnect backs off up to ~8 s here)


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory, relay: tuple[Relay, int]
              ) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("desk-chat")
    async with database("sqlite", data_dir) as url:
        settings = channel_settings(
            data_dir, url, queues={"email": "mail"}, max_attachment_bytes=100_000,
            email={"address": OURS, "smtp_port": free_port(), "relay_port": relay[1]})
        settings.routing.queues[0].wrapup_seconds = 300.0  # chats ("general"): wrap-up
        async with running(settings) as a:
            yield a


@pytest.fixture
async def proxy(app: App) -> AsyncIterator[CuttableProxy]:
    """The agent's network: the agent's browser reaches ctl only through it."""
    p = CuttableProxy(int(app.base.rpartition(":")[2]))
    await p.start()
    yield p
    await p.stop()


async def take_offer(page: Page, channel: str) -> str:
    """Accept the offer's toast with the keyboard (focus moves to it); the contact id."""
    toast = page.locator(f".toast[data-channel={channel}]")
    await toast.wait_for(timeout=WAIT)
    offer = await toast.get_attribute("data-offer")
    contact: str = await page.evaluate("(id) => window.__offers.find((o) => o.id === id)"
                                       ".contact_id", offer)
    await toast.locator(".accept").press("Enter")
    await toast.wait_for(state="detached")
    return contact


async def log_texts(page: Page) -> list[str]:
    return await page.locator(".conv-log li.msg:not(.sys):not(.pending) .text").all_inner_texts()


async def test_agent_works_a_chat_and_an_email(app: App, browser: Browser,
                                               relay: tuple[Relay, int],
                                               proxy: CuttableProxy) -> None:
    user = f"c{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user, queues=("general", "mail"))
    agent_ctx: BrowserContext = await browser.new_context()
    visitor_ctx: BrowserContext = await browser.new_context()
    agent = await agent_ctx.new_page()
    visitor = await visitor_ctx.new_page()
    agent_errors, visitor_errors = ConsoleErrors(agent), ConsoleErrors(visitor)
    await agent.add_init_script("""window.addEventListener('DOMContentLoaded', () => {
        window.__offers = []; window.__selected = []; window.__opens = 0;
        const wait = setInterval(() => {
          if (!window.desk) return;
          clearInterval(wait);
          desk.on('offer', (m) => window.__offers.push(m.offer));
          desk.on('conversation:selected', (d) => window.__selected.push(d));
          desk.on('ws:open', () => { window.__opens += 1; });
        }, 5);
    });""")
    await login(agent, f"http://127.0.0.1:{proxy.port}", user, password)
    await agent.select_option("#agent-state", "available")
    await agent.wait_for_selector("[data-region=topbar][data-state=available]")
    await agent.get_by_text("No open conversations").wait_for()

    # The visitor starts a chat; the agent takes it: its tab opens, selected.
    await visitor.goto(f"{app.base}/chat/")
    await visitor.fill("#ctl-chat form [name=name]", "Wang Fang")
    await visitor.fill("#ctl-chat form [name=email]", f"{user}@example.cn")
    await visitor.fill("#ctl-chat form [name=text]", "你好, is anyone there?")
    await visitor.click("#ctl-chat form button")
    chat = await take_offer(agent, "chat")
    tab = agent.locator(f".conv-tab[data-contact='{chat}']")
    await tab.and_(agent.locator("[aria-selected=true]")).wait_for(timeout=WAIT)
    await agent.wait_for_selector(".conv-log li.msg.in:has-text('is anyone there')")
    selected = await agent.evaluate("window.__selected")
    assert selected[-1]["contact_id"] == chat and selected[-1]["channel"] == "chat"
    assert selected[-1]["customer_id"]

    # Replies both ways: Enter sends, Shift+Enter is a new line; typing shows both sides.
    box = agent.locator(".composer textarea")
    await box.click()
    await box.type("Hello Wang,")
    await visitor.wait_for_selector("#ctl-chat .typing:has-text('typing')")
    await box.press("Shift+Enter")
    await box.type("how can I help?")
    await box.press("Enter")
    await visitor.wait_for_selector("#ctl-chat .m.agent:has-text('how can I help')")
    assert await box.input_value() == ""
    # A quick reply from the assist pane lands at the caret of this conversation's box.
    await box.type("Sorry: ")
    await agent.evaluate("(id) => desk.emit('composer:insert', {contact_id: id, "
                         "text: 'we will check'})", chat)
    assert await box.input_value() == "Sorry: we will check"
    await box.fill("")
    await visitor.fill("#ctl-chat [name=text]", "my parcel")
    await visitor.type("#ctl-chat [name=text]", " is late")
    await agent.wait_for_selector(".typing:has-text('Wang Fang is typing')")
    await visitor.press("#ctl-chat [name=text]", "Enter")
    await agent.wait_for_selector(".conv-log li.msg.in:has-text('my parcel is late')")
    await agent.wait_for_selector(".conv-log li.msg.out .status-sent")

    # A file the agent attaches reaches the visitor (by name); a refused type is named.
    files = agent.locator(".composer input[type=file]")
    await files.set_input_files([{"name": "label.pdf", "mimeType": "application/pdf",
                                  "buffer": b"%PDF-1.4 shipping label"}])
    await box.fill("Here is your shipping label")
    await box.press("Enter")
    await agent.wait_for_selector(".conv-log a[download='label.pdf']")
    await visitor.wait_for_selector("#ctl-chat .m.agent:has-text('shipping label')")
    async with visitor.expect_download() as got:
        await visitor.click("#ctl-chat .m.agent a.file:has-text('label.pdf')")
    download = await got.value
    assert download.suggested_filename == "label.pdf"
    saved = await asyncio.to_thread(Path(await download.path()).read_bytes)
    assert saved == b"%PDF-1.4 shipping label"
    # Only files of the visitor's own chat are served to them.
    foreign = await visitor.evaluate("""(sha) => fetch('/chat/files/' + sha, {headers:
        {'X-Chat-Token': JSON.parse(localStorage.getItem(KEY)).token}}).then(r => r.status)"""
                                     .replace("KEY", WIDGET_KEY), "0" * 64)
    assert foreign == 404
    await files.set_input_files([{"name": "tool.exe", "mimeType": "application/x-msdownload",
                                  "buffer": b"MZ"}])
    await box.fill("run this")
    await box.press("Enter")
    await agent.wait_for_selector(".composer .error:has-text('tool.exe')")
    await files.set_input_files([])
    await box.fill("")
    await screenshot(agent, "desk-chat-agent")

    # The agent's network drops; the visitor writes meanwhile; the network comes back.
    opens = await agent.evaluate("window.__opens")
    proxy.cut()
    await agent_ctx.set_offline(True)
    await agent.wait_for_function("() => desk.socket.readyState !== 1", timeout=WAIT)
    for text in ("are you there?", "hello??"):
        await visitor.fill("#ctl-chat [name=text]", text)
        await visitor.press("#ctl-chat [name=text]", "Enter")
        await visitor.wait_for_selector(f"#ctl-chat .m:has-text('{text}')")
    proxy.restore()
    await agent_ctx.set_offline(False)
    await agent.wait_for_function(f"() => window.__opens > {opens}", timeout=WAIT)
    await agent.wait_for_selector(".conv-log li.msg.in:has-text('hello??')", timeout=WAIT)
    expected = ["你好, is anyone there?", "Hello Wang,\nhow can I help?", "my parcel is late",
                "Here is your shipping label", "are you there?", "hello??"]
    assert await log_texts(agent) == expected
    # Pushes flow again after the reconnect, still without duplicates.
    await visitor.fill("#ctl-chat [name=text]", "ok I'm back")
    await visitor.press("#ctl-chat [name=text]", "Enter")
    await agent.wait_for_selector(".conv-log li.msg.in:has-text('back')")
    assert await log_texts(agent) == [*expected, "ok I'm back"]
    times = await agent.locator(".conv-log li.msg:not(.sys) time").all_inner_texts()
    assert len(times) == len(expected) + 1 and all(times)  # pushed ones have theirs too

    # An email arrives: a second tab; the chat's tab counts what arrives unseen.
    customer = f"li{uuid.uuid4().hex[:6]}@example.org"
    mail = new_mail(f"Li Lei <{customer}>", "Invoice 42", "Where is my invoice?\nOrder 42.")
    await asyncio.to_thread(smtp_send, app, mail, customer)
    email = await take_offer(agent, "email")
    await agent.wait_for_selector(f".conv-tab[data-contact='{email}'][aria-selected=true]")
    assert await agent.locator(".conv-tab").count() == 2
    assert await agent.locator(f"#conv-tab-{email} .name").inner_text() == "Li Lei"
    assert await agent.locator(f"#conv-tab-{email}").get_attribute("aria-label") == \
        "Email, Li Lei"
    await visitor.fill("#ctl-chat [name=text]", "still waiting")
    await visitor.press("#ctl-chat [name=text]", "Enter")
    await tab.locator(".unread:has-text('1')").wait_for(timeout=WAIT)
    assert "1 unread" in (await tab.get_attribute("aria-label") or "")

    # The email reply: subject "Re: ...", the customer's text quoted, Ctrl+Enter sends.
    assert await agent.input_value(f"#subject-{email}") == "Re: Invoice 42"
    body = agent.locator(f"#reply-{email}")
    draft = await body.input_value()
    assert "Li Lei wrote:\n> Where is my invoice?\n> Order 42." in draft
    assert draft.startswith("\n\nOn ")
    await body.focus()
    await agent.keyboard.type("Your invoice is attached.")
    await body.press("Control+Enter")
    sent = await asyncio.wait_for(relay[0].got.get(), 10)
    assert sent["To"] == customer and sent["Subject"] == "Re: Invoice 42"
    assert sent["In-Reply-To"] == mail["Message-ID"]
    text = sent.get_content().replace("\r\n", "\n")
    assert text.startswith("Your invoice is attached.\n\nOn ")
    assert "Li Lei wrote:\n> Where is my invoice?\n> Order 42." in text
    await agent.wait_for_selector(".conv-log li.msg.out:has-text('invoice is attached') "
                                  ".status-sent")
    # A delivery receipt updates the reply's status live (the message_status push).
    assert await app.services.channels.status("email", sent["Message-ID"].strip("<>"),
                                              "delivered")
    await agent.wait_for_selector(".conv-log li.msg.out:has-text('invoice is attached') "
                                  ".status-delivered")
    # A reply the relay refuses: shown failed, with the relay's reason, in the log.
    relay[0].refuse.add(customer)
    await body.fill("One more thing")
    await body.press("Control+Enter")
    failed = agent.locator(".conv-log li.msg.out:has-text('One more thing') .status-failed")
    await failed.wait_for(timeout=WAIT)
    assert "550" in await failed.inner_text()
    await agent.wait_for_selector(".composer .error:has-text('could not send')")
    relay[0].refuse.discard(customer)
    await screenshot(agent, "desk-email-reply")

    # Keyboard: arrows move between tabs (and select); Alt+2 jumps to the second.
    await agent.focus(f"#conv-tab-{email}")
    await agent.keyboard.press("ArrowLeft")
    await agent.wait_for_selector(f".conv-tab[data-contact='{chat}'][aria-selected=true]")
    await tab.locator(".unread").wait_for(state="detached")
    assert (await agent.evaluate("window.__selected"))[-1]["contact_id"] == chat
    await agent.keyboard.press("Alt+2")
    await agent.wait_for_selector(f".conv-tab[data-contact='{email}'][aria-selected=true]")
    await agent.click(".wrapup button.complete")
    await agent.locator(f".conv-tab[data-contact='{email}']").wait_for(state="detached")

    # A ticket from the chat, linked to the contact; then the wrap-up.
    await agent.wait_for_selector(f".conv-tab[data-contact='{chat}'][aria-selected=true]")
    assert await agent.locator(f"#ticket-{chat}").is_hidden()
    await agent.click(".wrapup button.new-ticket")
    assert await unlabelled(agent) == []  # tabs, composer, wrap-up, ticket form
    await agent.fill(f"#ticket-subject-{chat}", "Late parcel")
    await agent.select_option(f"#ticket-priority-{chat}", "high")
    await agent.click(f"#ticket-{chat} button[type=submit]")
    await agent.wait_for_selector(".wrapup .note:has-text('created')")
    async with app.services.db.session(readonly=True) as s:
        tickets = (await s.execute(select(Ticket.subject, Ticket.priority, Ticket.customer_id)
                                   .join(TicketContact, TicketContact.ticket_id == Ticket.id)
                                   .where(TicketContact.contact_id == chat))).all()
    assert [(t.subject, t.priority) for t in tickets] == [("Late parcel", "high")]
    assert tickets[0].customer_id == selected[-1]["customer_id"]
    await agent.fill(f"#disposition-{chat}", "resolved")
    await agent.fill(f"#notes-{chat}", "parcel re-sent")
    await agent.click(".wrapup button.complete")
    await agent.wait_for_selector(".wrapup button.wrapup-done")
    await visitor.wait_for_selector("#ctl-chat .stars button")  # the chat is over for them
    await screenshot(agent, "desk-wrapup")
    await agent.click(".wrapup button.wrapup-done")
    await tab.wait_for(state="detached")
    await agent.get_by_text("No open conversations").wait_for()
    async with app.services.db.session(readonly=True) as s:
        contact = await s.get(Contact, chat)
        notes = list(await s.scalars(select(ContactEvent.data).where(
            ContactEvent.contact_id == chat, ContactEvent.kind == "disposition")))
    assert contact is not None and contact.state == "closed"
    assert [(n["disposition"], n["notes"]) for n in notes] == [("resolved", "parcel re-sent")]
    await screenshot(visitor, "desk-chat-visitor")
    # The errors this test provoked, which the browser logs itself (console events may
    # reach the test after the page showed the outcome: dropped only now): the refused
    # .exe (422), the reconnect attempts the outage refused, the relay's refusal (502),
    # the visitor's request for a file of another chat (404).
    agent_errors.allow("status of 422")
    agent_errors.allow(r"/api/v1/ws' failed: .*(ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_)")
    agent_errors.allow("status of 502")
    visitor_errors.allow(r"status of 404 .*/chat/files/0{64}")
    assert agent_errors == []
    assert visitor_errors == []
    await agent_ctx.close()
    await visitor_ctx.close()

