"""Tickets end to end on a virtual clock (SQLite and PostgreSQL): rules on creation, SLA
warnings and a breach over a weekend and a holiday in business hours, escalation to
another department, the customer told by email (a real SMTP server) in their language,
opt-out respected, reopening on the customer's reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from adapters.email.send import SmtpSender
from ctl.channels.contract import Inbound
from ctl.channels.settings import EmailSettings
from ctl.contacts.states import ContactState
from ctl.store.db import Database
from ctl.tickets.search import Filters
from tests.integration.smtp import Inbox, smtp_server
from tests.integration.tickets_app import App, start_app
from tests.integration.tickets_db import ticket_db

__all__ = ["ticket_db"]
SH = ZoneInfo("Asia/Shanghai")
RULES = """\
timezone: Asia/Shanghai
business_hours: {mon-fri: "09:00-18:00"}
holidays: [2026-11-30]
sla:
  high: {first_response: 1h, resolution: 4h, warn_at: 0.5}
rules:
  - name: acknowledge
    when: [create]
    if: {channel: email}
    then: {notify: received}
  - name: refunds to billing
    when: [create]
    if: {text: refund}
    then: {department: billing, add_tags: [refund]}
  - name: breaches escalate
    when: [sla_breach]
    then: {priority: urgent, department: tech, note: "SLA breached: escalated"}
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 16, 0, tzinfo=SH).astimezone(UTC)  # a Friday

    def __call__(self) -> datetime:
        return self.now

    def at(self, *args: int) -> None:
        self.now = datetime(*args, tzinfo=SH).astimezone(UTC)  # type: ignore[misc]


@pytest.fixture(scope="module")
async def flow(ticket_db: Database, tmp_path_factory: pytest.TempPathFactory
               ) -> AsyncIterator[tuple[App, Clock, Inbox]]:
    data = tmp_path_factory.mktemp("flow")
    (data / "tickets.yaml").write_text(RULES, encoding="utf-8")
    with smtp_server() as (inbox, port):
        async for app in start_app(ticket_db, data, tickets_file=Path(data / "tickets.yaml")):
            clock = Clock()
            app.services.tickets.clock = clock
            # The email adapter's sender, relaying to the test's SMTP server.
            app.services.outbound.register("email", SmtpSender(EmailSettings(
                address="support@ctl.example", relay_port=port)))
            yield app, clock, inbox


def body(msg: Message) -> str:
    assert isinstance(msg, EmailMessage)  # parsed with the default policy
    return str(msg.get_content())


async def test_sla_breach_over_a_weekend_escalates_and_the_customer_is_told(
        flow: tuple[App, Clock, Inbox]) -> None:
    app, clock, inbox = flow
    sue = await app.panel("sue")
    t = await sue.call("POST", "/api/v1/tickets", {
        "subject": "Router keeps rebooting", "channel": "email", "priority": "high",
        "department": "service", "customer": {"kind": "email", "value": "wf@example.com"}},
        expect=201)
    path = f"/api/v1/tickets/{t['id']}"
    assert t["response_due"].startswith("2026-11-27T09:00")  # 17:00 in Shanghai
    assert t["resolution_due"].startswith("2026-12-01T03:00")  # Tuesday 11:00, after Monday off
    received = await inbox.next()
    assert received["To"] == "wf@example.com"
    assert received["Subject"] == f"[#{t['number']}] We received your request: " \
                                  "Router keeps rebooting"
    assert "resolve it by 2026-12-01 11:00" in body(received)
    sweep = app.services.ticket_rules.sweep
    clock.at(2026, 11, 27, 16, 20)
    assert await sweep() == []
    clock.at(2026, 11, 27, 16, 31)  # half the hour to first response is gone
    assert await sweep() == [(t["number"], "warning")]
    warned = await sue.call("GET", "/api/v1/tickets?sla_state=warning")
    assert [x["number"] for x in warned["tickets"]] == [t["number"]]
    clock.at(2026, 11, 27, 16, 40)
    await sue.call("POST", path + "/replies", {"body": "Please unplug it for 10 s."},
                   expect=201)
    reply = await inbox.next()
    assert "Please unplug it for 10 s." in body(reply) and reply["In-Reply-To"] == \
        received["Message-ID"]
    for day in ((2026, 11, 27, 17, 59), (2026, 11, 28, 12, 0), (2026, 11, 30, 12, 0),
                (2026, 12, 1, 10, 59)):  # the weekend and the holiday do not count
        clock.at(*day)
        assert await sweep() == []
    clock.at(2026, 12, 1, 11, 0)
    assert await sweep() == [(t["number"], "breached")]
    escalated = await sue.call("GET", path)
    assert (escalated["priority"], escalated["department"], escalated["sla_state"]) == \
        ("urgent", "tech", "breached")
    events = (await sue.call("GET", path + "/history"))["events"]
    kinds = [e["kind"] for e in events]
    assert kinds.index("sla_warning") < kinds.index("reply") < kinds.index("sla_breach")
    note = next(e for e in events if e["kind"] == "note")
    assert (note["actor"], note["data"]["body"]) == ("rule:breaches escalate",
                                                     "SLA breached: escalated")
    await sue.call("POST", path + "/status", {"status": "open"})
    await sue.call("POST", path + "/status", {"status": "resolved"})
    assert (await inbox.next())["Subject"].startswith(f"[#{t['number']}] Resolved")
    back = await sue.call("POST", path + "/customer-replies", {"body": "still rebooting"},
                          expect=201)
    assert (back["status"], back["department"]) == ("reopened", "tech")
    assert back["task_contact_id"] != escalated["task_contact_id"]  # waits in tech again


async def test_opt_out_language_and_rules_on_create(flow: tuple[App, Clock, Inbox]) -> None:
    app, _, inbox = flow
    sue = await app.panel("sue")
    zh = await sue.call("POST", "/api/v1/tickets", {
        "subject": "退款申请 refund", "channel": "email", "fields": {"language": "zh-CN"},
        "customer": {"kind": "email", "value": "zh@example.com"}}, expect=201)
    msg = await inbox.next()
    assert msg["Subject"] == f"[#{zh['number']}] 我们已收到您的请求：退款申请 refund"  # noqa: RUF001
    assert f"工单号 #{zh['number']}" in body(msg)
    assert (zh["department"], zh["tags"]) == ("billing", ["refund"])  # the refund rule
    path = f"/api/v1/tickets/{zh['id']}"
    await sue.call("PATCH", path, {"notify": False})
    await sue.call("POST", path + "/replies", {"body": "不会发送"}, expect=201)
    events = (await sue.call("GET", path + "/history"))["events"]
    skipped = [e for e in events if e["kind"] == "notify_skipped"]
    assert [e["data"]["reason"] for e in skipped] == ["opted out"]
    assert inbox.messages.empty()
    sent = [e for e in events if e["kind"] == "notified"]
    assert [(e["data"]["template"], e["data"]["to"]) for e in sent] == \
        [("received", "zh@example.com")]


async def test_tickets_from_an_email_and_a_chat(flow: tuple[App, Clock, Inbox]) -> None:
    app, _, inbox = flow
    mail = await app.services.channels.receive(Inbound(
        channel="email", identity=("email", "mail.user@example.com"),
        address="mail.user@example.com", text="My invoice is wrong", subject="Invoice",
        external_id="m1@example.com", queue="service"))
    t = await app.services.tickets.create(subject="Invoice is wrong", source="email",
                                          contact_id=mail.contact_id)
    assert (t.channel, t.customer_id, t.contact_ids) == \
        ("email", mail.customer_id, [mail.contact_id])
    ack = await inbox.next()  # the acknowledge rule answers emails, on email
    assert ack["To"] == "mail.user@example.com" and f"#{t.number}" in ack["Subject"]
    # The customer answers that email after the ticket was resolved: it reopens.
    await app.services.tickets.move(t.id, "open")
    await app.services.tickets.move(t.id, "resolved")
    await app.services.channels.receive(Inbound(
        channel="email", identity=("email", "mail.user@example.com"),
        address="mail.user@example.com", text="Still wrong!", subject="Re: Invoice",
        external_id="m2@example.com", refs=(ack["Message-ID"].strip("<>"),),
        queue="service"))
    reopened = await app.services.tickets.get(t.id)
    assert reopened.status == "reopened"
    replies = [e for e in await app.services.tickets.history(t.id)
               if e["kind"] == "customer_reply"]
    assert replies and replies[-1]["data"]["body"] == "Still wrong!"
    chat = await app.services.channels.receive(Inbound(
        channel="chat", identity=("email", "chatter@example.com"), address="session-1",
        text="my line is down", queue="service"))
    c = await app.services.tickets.create(subject="Line down", source="chat",
                                          contact_id=chat.contact_id, department="tech")
    assert (c.channel, c.customer_id, c.department) == ("chat", chat.customer_id, "tech")
    assert set(c.contact_ids) == {chat.contact_id, c.task_contact_id}  # linked at one instant
    mine = await app.services.tickets.search(Filters(customer_id=chat.customer_id))
    assert [x.number for x in mine] == [c.number]  # what an agent serving them sees
    # While the chat is open the news goes into it, where the visitor reads it...
    notify = app.services.ticket_rules.notify
    assert notify is not None
    in_chat = await notify(c, "received")
    assert in_chat is not None
    said = await app.services.channels.conversation(chat.contact_id)
    assert [(m["id"], m["direction"]) for m in said][-1] == (in_chat, "out")
    # ...once it is over, to the email the visitor gave.
    await app.services.routing.end(chat.contact_id, ContactState.ABANDONED, "left")
    await notify(await app.services.tickets.get(c.id), "resolved")
    mail_back = await inbox.next()
    while mail_back["To"] != "chatter@example.com":  # earlier mails to the first customer
        mail_back = await inbox.next()
    assert mail_back["To"] == "chatter@example.com" and f"#{c.number}" in mail_back["Subject"]
    told = [(e["data"]["channel"], e["data"]["to"]) for e in await app.services.tickets.history(
        c.id) if e["kind"] == "notified"]
    assert told == [("chat", "session-1"), ("email", "chatter@example.com")]
