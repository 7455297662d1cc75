"""A web chat visitor as the widget behaves, over a real websocket (aiohttp client)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp


class ChatVisitor:
    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = http
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.token: str | None = None
        self.contact: str | None = None
        self.last = 0
        self.seen: list[tuple[str, int, str]] = []  # (contact, seq, text) as shown
        self.unread: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, **hello: Any) -> dict[str, Any]:
        """Open the socket and say hello (resuming when there is a token); the first
        answer ("welcome" or "session")."""
        self.ws = await self.http.ws_connect(self.base + "/chat/ws")
        self.closed.clear()
        self._reader = asyncio.create_task(self._read())
        body = {"type": "hello", "token": self.token, "contact": self.contact,
                "last_seq": self.last, **hello}
        await self.send(body)
        return await self.next_of("welcome", "session")

    async def start(self, **form: Any) -> dict[str, Any]:
        await self.send({"type": "start", **form})
        session = await self.next("session")
        self.token = session["token"]
        return session

    async def say(self, text: str, cid: str) -> dict[str, Any]:
        await self.send({"type": "message", "cid": cid, "text": text})
        return await self.next("ack", cid=cid)

    async def send(self, body: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(body)

    async def next(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        return await self.next_of(kind, timeout=timeout, **match)

    async def next_of(self, *kinds: str, timeout: float = 10.0, **match: Any
                      ) -> dict[str, Any]:
        """The first unread message of one of `kinds` (others stay unread, in order)."""
        def hit(msg: dict[str, Any]) -> bool:
            return msg.get("type") in kinds and all(msg.get(k) == v for k, v in match.items())

        async def find() -> dict[str, Any]:
            for i, msg in enumerate(self.unread):
                if hit(msg):
                    return self.unread.pop(i)
            while True:
                msg = await self.inbox.get()
                if hit(msg):
                    return msg
                self.unread.append(msg)

        return await asyncio.wait_for(find(), timeout)

    async def drop(self) -> None:
        """The network goes away (no goodbye)."""
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                body = msg.json()
                if body.get("type") == "message":
                    self.seen.append((body["contact"], body["seq"], body["text"]))
                    if body["contact"] == self.contact:
                        self.last = max(self.last, body["seq"])
                elif body.get("type") == "state" and body["contact"] != self.contact:
                    self.contact, self.last = body["contact"], 0
                self.inbox.put_nowait(body)
        finally:
            self.closed.set()
