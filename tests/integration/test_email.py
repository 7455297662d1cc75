"""Email end to end: real SMTP into the built-in server, a real relay for replies, IMAP
IDLE against a private Dovecot; threading, bounces, automatic replies, bad mail."""

from __future__ import annotations

import asyncio
import base64
import email
import smtplib
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage, Message
from email.policy import default
from typing import Any

import aiohttp
import aioimaplib
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from ctl.store.models import Contact
from ctl.store.models import Message as Row
from tests.integration.agent_api import Panel
from tests.integration.channels_app import App, add_agent, channel_settings, database, running
from tests.integration.dovecot import Dovecot, dovecot
from tests.integration.harness import eventually, free_port

OURS = "support@ctl.test"


class Relay:
    """The outbound MTA: a real SMTP server that keeps what it is given."""

    def __init__(self) -> None:
        self.got: asyncio.Queue[Message] = asyncio.Queue()
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.got.put_nowait(email.message_from_bytes(envelope.original_content or b"",
                                                     policy=default))
        return "250 OK"


@pytest.fixture(scope="module")
def box() -> Iterator[Dovecot]:
    with dovecot() as b:
        yield b


@pytest.fixture(scope="module")
async def relay() -> AsyncIterator[tuple[Relay, int]]:
    handler = Relay()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler), "127.0.0.1", 0)
    yield handler, int(server.sockets[0].getsockname()[1])
    server.close()


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory, box: Dovecot,
              relay: tuple[Relay, int]) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("email")
    email_settings = {
        "address": OURS, "smtp_port": free_port(), "relay_port": relay[1],
        "max_message_bytes": 200_000,
        "imap": [{"host": "127.0.0.1", "port": box.port, "ssl": False, "username": box.user,
                  "password": box.password, "idle_seconds": 30}]}
    async with database("sqlite", data_dir) as url, running(channel_settings(
            data_dir, url, email=email_settings, queues={"email": "mail"},
            max_attachment_bytes=50_000)) as a:
        yield a


@pytest.fixture
async def agent(app: App) -> AsyncIterator[Panel]:
    user = f"m{uuid.uuid4().hex[:8]}"
    password = await add_agent(app.services, user, queues=("mail",))
    async with aiohttp.ClientSession() as http:
        panel = await Panel(app.base, http).login(user, password)
        await panel.listen()
        await panel.state("available")
        yield panel
        await panel.state("offline")
        await panel.close()


def smtp_send(app: App, raw: bytes | EmailMessage, sender: str = "customer@example.org",
              to: str = OURS) -> None:
    port = app.settings.channels.email.smtp_port
    assert port is not None
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        if isinstance(raw, EmailMessage):
            s.send_message(raw, from_addr=sender, to_addrs=[to])
        else:
            s.sendmail(sender, [to], raw)


def new_mail(sender: str, subject: str, text: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, OURS, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content(text)
    return msg


async def rows(app: App, **where: Any) -> list[Row]:
    async with app.services.db.session(readonly=True) as s:
        stmt = select(Row).filter_by(**where).order_by(Row.created_at, Row.seq)
        return list(await s.scalars(stmt))


async def test_mail_thread_reply_and_answer(app: App, agent: Panel,
                                            relay: tuple[Relay, int]) -> None:
    customer = f"wang{uuid.uuid4().hex[:6]}@example.org"
    first = new_mail(f"Wang Fang <{customer}>", "发票问题", "请把发票发给我。")
    first.add_attachment(b"%PDF-1.4 order", maintype="application", subtype="pdf",
                         filename="订单.pdf")
    first.add_attachment(b"MZ....", maintype="application", subtype="x-msdownload",
                         filename="run.exe")
    await asyncio.to_thread(smtp_send, app, first, customer)
    offer = await agent.next("offer")
    contact = offer["offer"]["contact_id"]
    assert offer["offer"]["channel"] == "email" and offer["offer"]["queue"] == "mail"
    await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
    listed = (await agent.call("GET", f"/api/v1/contacts/{contact}/messages"))["messages"]
    assert [(m["subject"], m["text"], m["address"]) for m in listed] == \
        [("发票问题", "请把发票发给我。", customer)]
    pdf, exe = listed[0]["attachments"]
    assert (pdf["name"], pdf["type"], pdf["size"]) == ("订单.pdf", "application/pdf", 14)
    assert "not accepted" in exe["dropped"]
    async with aiohttp.ClientSession() as http, http.get(
            f"{app.base}/api/v1/attachments/{pdf['sha256']}",
            headers={"Authorization": f"Bearer {agent.token}"}) as r:
        assert await r.read() == b"%PDF-1.4 order"
    # The agent answers: threaded to the customer's mail, through the relay.
    await agent.call("POST", f"/api/v1/contacts/{contact}/messages",
                     {"text": "已发送\uff0c请查收。"}, expect=201)
    sent = await asyncio.wait_for(relay[0].got.get(), 10)
    assert sent["To"] == customer and sent["From"] == OURS
    assert sent["Subject"] == "Re: 发票问题"
    assert sent["In-Reply-To"] == first["Message-ID"]
    assert sent["References"] == first["Message-ID"]
    assert sent.get_content().strip() == "已发送\uff0c请查收。"
    # The customer answers our reply, quoting only our Message-ID: the same contact.
    answer = new_mail(customer, "Re: 发票问题", "收到\uff0c谢谢", In_Reply_To=sent["Message-ID"],
                      References=f"{first['Message-ID']} {sent['Message-ID']}")
    await asyncio.to_thread(smtp_send, app, answer, customer)
    pushed = await agent.next("message")
    assert pushed["contact"] == contact and pushed["message"]["text"] == "收到\uff0c谢谢"
    statuses = [(r.direction, r.status, r.seq) for r in await rows(app, contact_id=contact)]
    assert statuses == [("in", "received", 1), ("out", "sent", 2), ("in", "received", 3)]
    # The same mail delivered twice (an MTA retry) is stored once.
    await asyncio.to_thread(smtp_send, app, answer, customer)
    assert len(await rows(app, contact_id=contact)) == 3


async def test_bounce_marks_our_message_failed(app: App, agent: Panel,
                                               relay: tuple[Relay, int]) -> None:
    customer = f"gone{uuid.uuid4().hex[:6]}@example.org"
    msg_id = await app.services.outbound.send("email", customer, "Your ticket 9 is solved",
                                              subject="Ticket 9", thread="ticket-9")
    sent = await asyncio.wait_for(relay[0].got.get(), 10)
    ours = sent["Message-ID"].strip("<>")
    assert ours.startswith(msg_id)
    dsn = DSN.format(recipient=customer, mid=ours).encode()
    await asyncio.to_thread(smtp_send, app, dsn, "")
    (row,) = await rows(app, id=msg_id)
    assert row.status == "failed" and "5.1.1" in (row.status_reason or "")
    assert await rows(app, address="mailer-daemon@mx.example.org") == []
    # The relay refusing a recipient is a failed send, named, not a crash.
    relay[0].refuse.add("nobody@example.org")
    with pytest.raises(Exception, match="550"):
        await app.services.outbound.send("email", "nobody@example.org", "hi")


async def test_auto_replies_and_bad_mail_are_not_routed(app: App) -> None:
    robot = f"away{uuid.uuid4().hex[:6]}@example.org"
    await asyncio.to_thread(smtp_send, app, new_mail(
        robot, "Automatic reply: Re: order", "I am away", Auto_Submitted="auto-replied"), robot)
    await asyncio.to_thread(smtp_send, app, new_mail(robot, "Out of Office", "away"), robot)
    assert await rows(app, address=robot) == []
    with pytest.raises(smtplib.SMTPDataError) as refused:  # no usable sender: refused, named
        await asyncio.to_thread(smtp_send, app, b"From: nobody\r\nSubject: x\r\n\r\nhi\r\n")
    assert refused.value.smtp_code == 550 and b"sender" in refused.value.smtp_error
    big = new_mail(robot, "huge", "x" * 300_000)
    with pytest.raises(smtplib.SMTPException) as too_big:
        await asyncio.to_thread(smtp_send, app, big, robot)
    assert "552" in str(too_big.value) or "exceeded" in str(too_big.value).lower()


async def test_imap_idle_reads_new_mail(app: App, box: Dovecot, agent: Panel) -> None:
    (watcher,) = app.services.email.watchers
    await asyncio.wait_for(watcher.connected.wait(), 15)
    customer = f"imap{uuid.uuid4().hex[:6]}@example.org"
    subject = base64.b64encode("訂單".encode("big5")).decode()
    raw = (f"From: {customer}\r\nTo: {OURS}\r\nSubject: =?big5?B?{subject}?=\r\n"
           f"Message-ID: <imap-1-{customer}>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=big5\r\n\r\n").encode() + \
        "我的訂單".encode("big5")
    client = aioimaplib.IMAP4("127.0.0.1", box.port)
    await client.wait_hello_from_server()
    await client.login(box.user, box.password)
    assert (await client.append(raw, "INBOX")).result == "OK"
    offer = await agent.next("offer", timeout=20)  # pushed by IDLE, no polling
    (row,) = await rows(app, contact_id=offer["offer"]["contact_id"])
    assert (row.text, row.subject, row.address) == ("我的訂單", "訂單", customer)
    await client.select("INBOX")

    async def seen() -> bool:
        found = await client.uid_search("UNSEEN")
        return not [x for x in found.lines[0].split() if x.isdigit()]

    await eventually(seen, 10, "the mail flagged \\Seen")
    await client.logout()
    async with app.services.db.session(readonly=True) as s:
        contact = await s.get(Contact, offer["offer"]["contact_id"])
    assert contact is not None and contact.external_ref == f"imap-1-{customer}"


DSN = """From: MAILER-DAEMON@mx.example.org
To: support@ctl.test
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="R"

--R
Content-Type: text/plain

Your message could not be delivered.
--R
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown
--R
Content-Type: text/rfc822-headers

Message-ID: <{mid}>
Subject: Ticket 9

--R--
"""
