"""One visitor's websocket: the chat protocol (see README, "Web chat").

Everything the visitor sees of the conversation is read from the database by `seq`, on
connect and whenever the contact's topic says something changed; so a reconnecting
visitor who says the last seq they saw gets exactly what they missed, once, in order.
Pushes only wake the socket up: a lost push costs nothing the next one does not repair.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from adapters.chat.service import ChatService
from adapters.chat.tokens import Visitor
from ctl.errors import BadRequest, CtlError
from ctl.routing.notifier import Notifier
from ctl.store.models import Contact, utcnow

log = logging.getLogger(__name__)
_FIRST_FRAME = 30.0
Frame = tuple[str, dict[str, Any]]  # ("client" | "push" | "gone", message)


class ChatSocket:
    def __init__(self, chat: ChatService, notifier: Notifier, ws: web.WebSocketResponse,
                 queue: str) -> None:
        self.chat = chat
        self.notifier = notifier
        self.ws = ws
        self.queue = queue
        self.visitor: Visitor | None = None
        self.contact: Contact | None = None
        self.last = 0  # the last seq the visitor has of self.contact
        self.asked_csat = False
        self.inbox: asyncio.Queue[Frame] = asyncio.Queue()
        self._stack = contextlib.ExitStack()
        self._pump: asyncio.Task[None] | None = None

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            hello = await asyncio.wait_for(self._next_client(), _FIRST_FRAME)
            if await self._begin(hello):
                await self._loop()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            reader.cancel()
            if self._pump is not None:
                self._pump.cancel()
            self._stack.close()

    async def _begin(self, hello: dict[str, Any]) -> bool:
        online = await self.chat.online(self.queue)
        if hello.get("token"):
            try:
                self.visitor = self.chat.tokens.read(str(hello["token"]))
            except CtlError as e:
                await self._error(e)
        if self.visitor is None:
            await self.send({"type": "welcome", "online": online, "need": "form"})
        early = None if hello.get("type") == "hello" else hello  # no hello: take it as is
        while self.visitor is None:
            msg, early = early or await self._next_client(), None
            try:
                if msg.get("type") == "offline":
                    got = await self.chat.offline(msg)
                    await self.send({"type": "left_message", "contact": got.contact_id})
                    return False
                if msg.get("type") == "start":
                    self.visitor, token = self.chat.start(msg)
                    await self.send({"type": "session", "token": token,
                                     "session": self.visitor.session, "online": online})
                elif msg.get("type") == "ping":
                    await self.send({"type": "pong"})
                else:
                    raise BadRequest('the chat has not started: send "start" (the pre-chat '
                                     'form) or "offline" (leave a message)')
            except CtlError as e:
                await self._error(e)
            if self.visitor is not None and msg.get("text"):
                await self._say({"cid": msg.get("cid") or "first", "text": msg["text"]})
        if hello.get("token"):
            await self.send({"type": "session", "token": hello["token"],
                             "session": self.visitor.session, "online": online})
        contact = await self.chat.contact(self.visitor)
        last = hello.get("last_seq")
        resumed = contact is not None and hello.get("contact") == contact.id
        await self._follow(contact, int(last) if resumed and isinstance(last, int) else 0)
        return True

    async def _loop(self) -> None:
        while True:
            source, msg = await self.inbox.get()
            if source == "gone":
                return
            if source == "push" and msg.get("type") == "closed":
                return  # too slow for its pushes: the visitor reconnects and resumes
            try:
                await (self._on_push(msg) if source == "push" else self._on_client(msg))
            except CtlError as e:
                await self._error(e, msg.get("cid"))

    async def _on_client(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "message":
            await self._say(msg)
        elif kind == "typing" and self.contact is not None:
            await self.chat.typing(await self._fresh(), bool(msg.get("on")))
        elif kind == "leave" and self.contact is not None:
            await self.chat.leave(await self._fresh())
        elif kind == "csat" and self.contact is not None:
            await self.chat.csat(await self._fresh(), msg.get("score"), msg.get("comment"))
            await self.send({"type": "csat_thanks"})
        elif kind == "ping":
            await self.send({"type": "pong"})
        else:
            raise BadRequest(f"unknown or untimely message type {kind!r}")

    async def _on_push(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "new":
            seq = msg.get("seq")
            if not (isinstance(seq, int) and seq <= self.last):  # not shown yet
                await self._replay()
        elif kind == "state":
            await self._state()
        elif kind == "typing":
            await self.send({"type": "typing", "from": "agent", "on": bool(msg.get("on"))})

    async def _say(self, msg: dict[str, Any]) -> None:
        assert self.visitor is not None
        text = msg.get("text", "")
        got = await self.chat.say(self.visitor, msg.get("cid") or "", text)
        if self.contact is None or got.contact_id != self.contact.id:
            await self._follow(await self.chat.contact(self.visitor), 0)
        elif got.seq == self.last + 1 and not got.duplicate:
            # The next seq is this very message: echo it without reading it back.
            await self._show(got.contact_id, got.seq, "visitor", text, utcnow().isoformat(), [])
            self.last = got.seq  # later messages each wake the socket with their own push
        else:
            await self._replay()
        # The ack after the echo: an ack means the visitor has the message shown.
        await self.send({"type": "ack", "cid": msg.get("cid"), "contact": got.contact_id,
                         "seq": got.seq})

    async def _follow(self, contact: Contact | None, last: int) -> None:
        """Switch to `contact` (a chat started anew opens a new contact)."""
        if self._pump is not None:
            self._pump.cancel()
            self._stack.close()
            self._stack = contextlib.ExitStack()
        self.contact, self.last, self.asked_csat = contact, last, False
        if contact is None:
            return
        topic = self._stack.enter_context(self.notifier.subscribe(f"contact:{contact.id}"))
        self._pump = asyncio.create_task(self._push_from(topic))
        await self._state()
        await self._replay()

    async def _replay(self) -> None:
        if self.contact is None:
            return
        for m in await self.chat.channels.conversation(self.contact.id, self.last):
            await self._show(m["contact_id"], m["seq"],
                             "visitor" if m["direction"] == "in" else "agent", m["text"],
                             m["at"], m["attachments"])
            self.last = m["seq"]

    async def _show(self, contact: str, seq: int, who: str, text: str, at: str,
                    attachments: list[Any]) -> None:
        # attachments: names (the protocol's first form); files: what /chat/files serves
        await self.send({"type": "message", "contact": contact, "seq": seq, "from": who,
                         "text": text, "at": at,
                         "attachments": [a.get("name") for a in attachments],
                         "files": [{"name": a.get("name"), "sha256": a["sha256"],
                                    "size": a.get("size")}
                                   for a in attachments if a.get("sha256")]})

    async def _state(self) -> None:
        contact = await self._fresh()
        view = await self.chat.view(contact)
        await self.send(view)
        if view["state"] == "closed" and contact.agent_id and not self.asked_csat:
            self.asked_csat = True
            await self.send({"type": "csat_request", "contact": contact.id})

    async def _fresh(self) -> Contact:
        assert self.contact is not None
        self.contact = await self.chat.channels.contact(self.contact.id)
        return self.contact

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(msg, ensure_ascii=False))

    async def _error(self, e: CtlError, cid: Any = None) -> None:
        body = {"type": "error", "error": e.code, "message": str(e)}
        await self.send({**body, "cid": cid} if cid else body)

    async def _next_client(self) -> dict[str, Any]:
        while True:
            source, msg = await self.inbox.get()
            if source == "client":
                return msg
            if source == "gone":
                raise ConnectionError("the visitor went away")

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                try:
                    msg = json.loads(frame.data)
                except ValueError:
                    msg = None
                if not isinstance(msg, dict):
                    await self._error(BadRequest("each message must be a JSON object"))
                    continue
                self.inbox.put_nowait(("client", msg))
        finally:
            self.inbox.put_nowait(("gone", {}))

    async def _push_from(self, topic: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            self.inbox.put_nowait(("push", await topic.get()))
