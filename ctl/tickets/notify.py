"""Telling the customer: templated messages (jinja2, en and zh-CN) sent on the channel the
ticket came from, through the channels' outbound registry (ctl/channels/outbound.py).

A ticket whose `notify` is false (the customer opted out) gets nothing; the skipped
notification is still in its history. Each message sent is a public event of the ticket
(template, channel, address, message id), so agents see what the customer was told.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jinja2
from sqlalchemy import select
from sqlalchemy.orm import Session

from ctl.contacts.states import FINAL
from ctl.errors import CtlError
from ctl.store.db import Database
from ctl.store.models import Contact, Identity, Message, Ticket
from ctl.tickets import rows
from ctl.tickets.model import TicketView
from ctl.tickets.service import TicketService

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).with_name("templates")
LANGUAGES = ("en", "zh-CN")
# Where a message for a ticket from each channel goes: the channel to send on and the
# customer identity that is its address. A call is answered by SMS. A chat is answered
# in that chat while it is open; once it is over nobody reads it, so the visitor's email
# (given in the pre-chat form), else their phone, carries the news.
ROUTES: dict[str, tuple[str, str]] = {
    "email": ("email", "email"), "sms": ("sms", "phone"), "voice": ("sms", "phone"),
    "wechat": ("wechat", "wechat_openid"), "weibo": ("weibo", "weibo_uid"),
    "douyin": ("douyin", "douyin_openid"),
}
AFTER_CHAT = (("email", "email"), ("sms", "phone"))
# What a skipped notification lacked, named in its reason ("no sms address for channel voice").
_WANTED = {"chat": "email or sms ", **{k: f"{v[0]} " for k, v in ROUTES.items()}}
STATUS_TEXT = {
    "en": {"new": "received", "open": "in progress", "pending_customer": "waiting for you",
           "pending_department": "with another team", "resolved": "resolved",
           "closed": "closed", "reopened": "reopened"},
    "zh-CN": {"new": "已受理", "open": "处理中", "pending_customer": "等待您的回复",
              "pending_department": "转交其他部门处理中", "resolved": "已解决",
              "closed": "已关闭", "reopened": "已重新打开"},
}


class Sender(Protocol):
    """What the channels' Outbound offers (its `send`)."""

    async def send(self, channel: str, to: str, text: str, *, subject: str | None = None,
                   thread: str | None = None, customer_id: str | None = None,
                   contact_id: str | None = None) -> str: ...


def templates(directory: Path = TEMPLATES) -> set[str]:
    """Template names (received, reply...) present in every language."""
    names = [{p.name.split(".")[0] for p in directory.glob(f"*.{lang}.j2")}
             for lang in LANGUAGES]
    return set.intersection(*names)


class Notifications:
    def __init__(self, db: Database, tickets: TicketService, sender: Sender, *,
                 directory: Path = TEMPLATES, language: str = "en",
                 timezone: ZoneInfo | None = None) -> None:
        self._db = db
        self._tickets = tickets
        self._sender = sender
        self._language = language
        self._tz = timezone or ZoneInfo("UTC")
        self._env = jinja2.Environment(loader=jinja2.FileSystemLoader(directory),
                                       undefined=jinja2.StrictUndefined,
                                       keep_trailing_newline=True, autoescape=False)
        self._env.filters["localtime"] = self._localtime

    def _localtime(self, at: datetime) -> str:
        return at.astimezone(self._tz).strftime("%Y-%m-%d %H:%M")

    async def on_change(self, ticket: TicketView, what: str) -> TicketView | None:
        """The service's hook: replies reach the customer, and so does a resolution."""
        if what == "reply":
            events = await self._tickets.history(ticket.id, public_only=True)
            body = next(e["data"]["body"] for e in reversed(events) if e["kind"] == "reply")
            await self.send(ticket, "reply", body=body)
        elif what == "status:resolved":
            await self.send(ticket, "resolved")
        return None  # recording what was sent is no change the caller must see

    async def send(self, ticket: TicketView, template: str, **extra: Any) -> str | None:
        """Render `template` in the customer's language and send it; the message id, or
        None when the customer opted out or cannot be reached (both recorded)."""
        if not ticket.notify:
            await self._record(ticket, "notify_skipped", template=template, reason="opted out")
            return None
        route = await self._route(ticket)
        if route is None:
            await self._record(ticket, "notify_skipped", template=template,
                               reason=f"no {_WANTED.get(ticket.channel or '', '')}address "
                                      f"for channel {ticket.channel}")
            return None
        channel, address, contact_id = route
        subject, text = self.render(ticket, template, **extra)
        try:
            message_id = await self._sender.send(channel, address, text, subject=subject,
                                                 thread=ticket.id,
                                                 customer_id=ticket.customer_id,
                                                 contact_id=contact_id)
        except CtlError as e:  # the ticket's work goes on; the failure is on record
            log.warning("ticket #%s: %s notification failed: %s", ticket.number, template, e)
            await self._record(ticket, "notify_failed", template=template, reason=str(e))
            return None
        await self._record(ticket, "notified", public=True, template=template,
                           channel=channel, to=address, message_id=message_id)
        return message_id

    def render(self, ticket: TicketView, template: str, **extra: Any) -> tuple[str, str]:
        """(subject, text): a template's first line is "Subject: ...", then a blank line."""
        lang = str(ticket.fields.get("language") or self._language)
        lang = lang if lang in LANGUAGES else self._language
        text = self._env.get_template(f"{template}.{lang}.j2").render(
            ticket=ticket, status_text=STATUS_TEXT[lang].get(ticket.status, ticket.status),
            **extra)
        first, _, rest = text.partition("\n")
        if not first.startswith("Subject: "):
            return f"#{ticket.number}", text
        return first.removeprefix("Subject: ").strip(), rest.lstrip("\n")

    async def _route(self, ticket: TicketView) -> tuple[str, str, str | None] | None:
        """(channel, address, the chat contact to post into or None); None: no way to
        reach the customer."""
        if ticket.channel == "chat":
            chat = await self._open_chat(ticket.contact_ids)
            if chat is not None:
                return "chat", chat[1], chat[0]
            for channel, kind in AFTER_CHAT:
                address = await self._address(ticket.customer_id, kind)
                if address is not None:
                    return channel, address, None
            return None
        route = ROUTES.get(ticket.channel or "")
        address = None if route is None else await self._address(ticket.customer_id, route[1])
        return None if route is None or address is None else (route[0], address, None)

    async def _open_chat(self, contact_ids: list[str]) -> tuple[str, str] | None:
        """The newest linked chat still open, and the visitor's address in it."""
        stmt = (select(Contact.id, Message.address)
                .join(Message, Message.contact_id == Contact.id)
                .where(Contact.id.in_(contact_ids), Contact.channel == "chat",
                       Contact.state.not_in([str(s) for s in FINAL]),
                       Message.direction == "in")
                .order_by(Message.created_at.desc()).limit(1))
        async with self._db.session(readonly=True) as s:
            row = (await s.execute(stmt)).first()
        return (row[0], row[1]) if row else None

    async def _address(self, customer_id: str | None, kind: str) -> str | None:
        if customer_id is None:
            return None
        stmt = select(Identity.value).where(Identity.customer_id == customer_id,
                                            Identity.kind == kind).order_by(Identity.created_at)
        async with self._db.session(readonly=True) as s:
            return (await s.scalars(stmt)).first()

    async def _record(self, ticket: TicketView, kind: str, *, public: bool = False,
                      **data: Any) -> None:
        def apply(s: Session, t: Ticket, now: datetime) -> None:
            s.add(rows.event(t, now, kind, "notify", public=public, **data))

        await self._tickets.change(ticket.id, apply, what=kind)
