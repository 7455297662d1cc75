"""The web chat's side of the channel contract: visitors in, agents' words out.

A visitor's messages carry a client id, stored as the message's channel id
(`chat:<session>:<cid>`), so a message resent after a reconnect is stored once; every
message of the conversation, both ways, has the contact's `seq`, which is what the
visitor resumes from.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from adapters.chat.tokens import Tokens, Visitor
from ctl.channels.contract import Attachment, ChannelError, Inbound, Outgoing, Received
from ctl.channels.service import ChannelService
from ctl.contacts.service import ContactService
from ctl.contacts.states import FINAL, ContactState
from ctl.customers.identity import normalize_email, normalize_phone
from ctl.errors import BadRequest, InvalidTransition, NotFound
from ctl.routing.client import Routing
from ctl.store.db import Database
from ctl.store.models import Agent, Contact, ContactEvent, Message

_FINAL = {s.value for s in FINAL}
_OVER = _FINAL | {ContactState.WRAPUP.value}


class ChatSender:
    """Outbound on "chat": the message is stored already; wake the visitor's socket."""

    def __init__(self, channels: ChannelService) -> None:
        self._channels = channels

    async def send(self, out: Outgoing) -> str | None:
        if out.contact_id is None:
            raise ChannelError("chat: a message to a visitor goes into their chat (a contact)")
        self._channels.notify(out.contact_id, {"type": "new"})
        return None


class ChatService:
    def __init__(self, channels: ChannelService, contacts: ContactService, routing: Routing,
                 db: Database, key: str, region: str = "US") -> None:
        self.channels = channels
        self._contacts = contacts
        self._routing = routing
        self._db = db
        self.tokens = Tokens(key)
        self._region = region
        channels.outbound.register("chat", ChatSender(channels))

    def start(self, form: dict[str, Any]) -> tuple[Visitor, str]:
        """The pre-chat form -> a visitor and their token. Errors name the field."""
        name = str(form.get("name") or "").strip()
        if not name or len(name) > 200:
            raise BadRequest("name: please give your name (up to 200 characters)")
        email, phone = form.get("email"), form.get("phone")
        given = []
        if email:
            value = normalize_email(str(email))
            if value is None:
                raise BadRequest(f"email: {email!r} is not an email address")
            given.append(["email", value])
        if phone:
            value = normalize_phone(str(phone), self._region)
            if value is None:
                raise BadRequest(f"phone: {phone!r} is not a phone number")
            given.append(["phone", value])
        if not given:
            raise BadRequest("email or phone: we need one to reach you")
        # Both given: one customer has both (the phone calling later finds this chat).
        (kind, value), *also = given
        visitor = Visitor(uuid.uuid4().hex, kind, value, name, also)
        return visitor, self.tokens.issue(visitor)

    async def say(self, visitor: Visitor, cid: str, text: str,
                  attachments: tuple[Attachment, ...] = ()) -> Received:
        if not isinstance(cid, str) or not 0 < len(cid) <= 64:
            raise BadRequest("cid: each message needs a client id (1-64 characters)")
        if not isinstance(text, str) or not (text.strip() or attachments):
            raise BadRequest("text: the message is empty")
        return await self.channels.receive(Inbound(
            channel="chat", identity=(visitor.kind, visitor.value), address=visitor.session,
            also=tuple((k, v) for k, v in visitor.also),
            text=text, name=visitor.name, external_id=f"{visitor.thread}:{cid}",
            thread=visitor.thread, attachments=attachments))

    async def file(self, visitor: Visitor, sha: str) -> Path:
        """An attachment of the visitor's own chat (theirs or the agent's); any other is
        not found, whoever asks."""
        async with self._db.session(readonly=True) as s:
            rows = await s.scalars(select(Message.attachments).where(
                Message.channel == "chat", Message.thread == visitor.thread))
            if not any(a.get("sha256") == sha for atts in rows for a in atts or []):
                raise NotFound(f"no file {sha} in this chat")
        return self.channels.attachments.path(sha)

    async def contact(self, visitor: Visitor) -> Contact | None:
        """The visitor's current chat: the open one, else the last one."""
        return await self._contacts.by_external_ref("chat", visitor.thread)

    async def typing(self, contact: Contact, on: bool) -> None:
        if contact.agent_id and contact.state == ContactState.ASSIGNED.value:
            self.channels.tell_agent(contact.agent_id, {"type": "typing", "contact": contact.id,
                                                        "on": bool(on)})

    async def leave(self, contact: Contact) -> None:
        """The visitor closed the chat: abandoned if nobody had taken it yet."""
        if contact.state in _OVER:
            return
        waiting = contact.state in ("new", "queued", "offered")
        await self._routing.end(contact.id, ContactState.ABANDONED if waiting
                                else ContactState.CLOSED, "customer_left")
        self.channels.notify(contact.id, {"type": "state"})  # routing may have said nothing
        if contact.agent_id:
            self.channels.tell_agent(contact.agent_id, {"type": "customer_left",
                                                        "contact": contact.id})

    async def csat(self, contact: Contact, score: Any, comment: Any) -> None:
        """Satisfaction after the chat: once, 1-5, with an optional comment."""
        if contact.state not in _OVER:
            raise InvalidTransition("csat: the chat is not over yet")
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise BadRequest("score: a whole number from 1 to 5")
        async with self._db.session(readonly=True) as s:
            done = await s.scalar(select(ContactEvent.id).where(
                ContactEvent.contact_id == contact.id, ContactEvent.kind == "csat").limit(1))
        if done is not None:
            raise InvalidTransition("csat: this chat was rated already")
        await self._contacts.log(contact.id, "csat", {
            "score": score, "comment": str(comment or "")[:2000]})

    async def view(self, contact: Contact) -> dict[str, Any]:
        """What the visitor sees of the contact: its state and the agent's name."""
        agent = None
        if contact.agent_id:
            async with self._db.session(readonly=True) as s:
                row = await s.get(Agent, contact.agent_id)
                agent = row.display_name if row else None
        state = {"new": "queued", "offered": "queued", "wrapup": "closed"}.get(
            contact.state, contact.state)
        if state in _FINAL:
            state = "closed"
        return {"type": "state", "contact": contact.id, "state": state, "agent": agent,
                "reason": contact.close_reason}

    async def online(self, queue: str) -> bool:
        """Whether anyone staffs the chat queue now (else the widget offers to leave a
        message)."""
        for q in await self._routing.queues():
            if q["name"] == queue:
                return bool(q["agents"]["staffed"])
        return False

    async def offline(self, form: dict[str, Any]) -> Received:
        """Leave a message while nobody is there: an email contact (answered by mail)."""
        email = normalize_email(str(form.get("email") or ""))
        if email is None:
            raise BadRequest("email: leave an email address so we can answer")
        text = str(form.get("text") or "").strip()
        if not text:
            raise BadRequest("text: the message is empty")
        name = str(form.get("name") or "").strip()[:200] or None
        return await self.channels.receive(Inbound(
            channel="email", identity=("email", email), address=email, text=text, name=name,
            subject=str(form.get("subject") or "Message left on the web chat")[:200],
            thread=f"chat-offline:{uuid.uuid4().hex}", meta={"source": "chat-offline"}))
