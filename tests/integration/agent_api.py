"""The agent API as a panel uses it: login, state, actions, and the websocket's pushes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp


class Panel:
    """One agent's session: REST calls with its token, and its websocket inbox."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = http
        self.token = ""
        self.agent_id = ""
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def login(self, username: str, password: str) -> Panel:
        body = await self.call("POST", "/api/v1/login",
                               {"username": username, "password": password})
        self.token, self.agent_id = body["token"], body["agent_id"]
        return self

    async def call(self, method: str, path: str, json: Any = None, expect: int = 200
                   ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.request(method, self.base + path, json=json,
                                     headers=headers) as r:
            body: dict[str, Any] = await r.json()
            assert r.status == expect, (method, path, r.status, body)
            return body

    async def state(self, state: str, reason: str = "") -> dict[str, Any]:
        return await self.call("PUT", "/api/v1/me/state", {"state": state, "reason": reason})

    async def listen(self) -> dict[str, Any]:
        """Open the websocket (token as the first message, as a browser does)."""
        self._ws = await self.http.ws_connect(self.base + "/api/v1/ws")
        await self._ws.send_json({"token": self.token})
        self._reader = asyncio.create_task(self._read())
        return await self.next("hello")

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.inbox.put_nowait(msg.json())

    async def next(self, kind: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        """The next pushed message of `kind` (earlier ones of other kinds are skipped)."""
        async def find() -> dict[str, Any]:
            while True:
                msg = await self.inbox.get()
                if msg.get("type") == kind and all(_get(msg, k) == v for k, v in match.items()):
                    return msg

        return await asyncio.wait_for(find(), timeout)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def _get(msg: dict[str, Any], dotted: str) -> Any:
    value: Any = msg
    for part in dotted.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value
