"""Replies through Douyin's send-message API (发送私信消息), as the business account.

POST {api_base}/im/send/msg/?open_id=<the business account> with the header
`access-token` (the account's user access token, scope im.direct_message) and JSON
{"msg_id": the customer message answered, "conversation_id": its conversation_short_id,
"to_user_id": the customer's open_id, "content": {"msg_type": 1, "text": {"text"}}}.
Douyin only lets a business answer a customer's message, so a reply names the latest
customer message of the conversation (the contract's `refs`). Douyin answers
{"data": {"msg_id", "error_code", "description"}, "extra": {...}} (older APIs) or
{"err_no", "err_msg", "data"}; both are read. On an expired or invalid token
(2190008, 2190002) it is renewed once through /oauth/refresh_token/ when a refresh_token
is configured.

The renewed token (and the refresh_token Douyin answers with it) is kept in the live
state (Redis when configured): every controller and the next start use it, where each
would otherwise renew on its own, each renewal leaving the others a token Douyin may
refuse. It is kept with a digest of the configured access_token, so an operator who
configures a new one is not overridden by an older renewal.

A customer's file (an image's resource_url, webhook.py) is downloaded with a GET, only
from the hosts in `media_hosts` (Douyin's CDNs; the push is signed, but a URL from it is
still an address ctl would otherwise fetch blindly), at most the attachment limit.

Assumption: msg_type 1 is text in the send API's content, as in Douyin's examples we
could read.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from adapters.douyin.webhook import MESSAGE_REF
from adapters.webhooks import ApiAnswer, JsonApi
from ctl.channels.contract import Attachment, ChannelError, Outgoing
from ctl.channels.settings import DouyinSettings
from ctl.store.live import LiveState, MemoryLive

_STALE_TOKEN = frozenset({2190008, 2190002})


class DouyinApi:
    def __init__(self, settings: DouyinSettings, live: LiveState | None = None) -> None:
        self._s = settings
        self._api = JsonApi("douyin", settings.api_base)
        self._live = live or MemoryLive()
        self._key = f"douyin:token:{settings.client_key}:{settings.open_id}"
        self._configured = hashlib.sha256(settings.access_token.encode()).hexdigest()[:16]
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def send(self, out: Outgoing) -> str | None:
        answered = next((r[len(MESSAGE_REF):] for r in reversed(out.refs)
                         if r.startswith(MESSAGE_REF)), None)
        if answered is None or "/" not in answered:
            raise ChannelError("douyin: a reply needs a customer's message to answer "
                               "(Douyin lets a business only answer)")
        if not self._s.open_id or not self._s.access_token:
            raise ChannelError("douyin: channels.douyin.open_id and access_token are needed "
                               "to send")
        conversation, msg_id = answered.rsplit("/", 1)
        body = json.dumps({"msg_id": msg_id, "conversation_id": conversation,
                           "to_user_id": out.to,
                           "content": {"msg_type": 1, "text": {"text": out.text}}},
                          ensure_ascii=False).encode()
        token, refresh = await self._tokens()
        answer = await self._send(token, body)
        if _code(answer) in _STALE_TOKEN and refresh:
            answer = await self._send(await self._renew(token), body)
        if _code(answer):
            raise ChannelError(f"douyin: im/send/msg failed: error {_code(answer)}: "
                               f"{_description(answer)}")
        data = answer.get("data")
        sent = data.get("msg_id") if isinstance(data, dict) else None
        return f"douyin:sent:{sent}" if sent else None

    async def _send(self, token: str, body: bytes) -> dict[str, Any]:
        return await self._api.call("POST", "/im/send/msg/", params={"open_id": self._s.open_id},
                                    body=body, headers={"access-token": token})

    async def _tokens(self) -> tuple[str, str]:
        """(access token, refresh token): the latest renewal any controller kept, else
        the configured ones."""
        raw = await self._live.get_value(self._key)
        kept = json.loads(raw) if raw else {}
        if kept.get("configured") == self._configured:
            return str(kept["access_token"]), str(kept["refresh_token"])
        return self._s.access_token, self._s.refresh_token

    async def _renew(self, stale: str) -> str:
        async with self._lock:
            token, refresh = await self._tokens()
            if token != stale:  # renewed meanwhile, here or by another controller
                return token
            answer = await self._api.call("POST", "/oauth/refresh_token/", form={
                "client_key": self._s.client_key, "refresh_token": refresh,
                "grant_type": "refresh_token"})
            data = answer.get("data")
            fresh = data.get("access_token") if isinstance(data, dict) else None
            if _code(answer) or not isinstance(fresh, str):
                raise ChannelError(f"douyin: oauth/refresh_token failed: error "
                                   f"{_code(answer)}: {_description(answer)}")
            assert isinstance(data, dict)
            await self._live.put_value(self._key, json.dumps({
                "configured": self._configured, "access_token": fresh,
                "refresh_token": data.get("refresh_token") or refresh}))
            self.refreshes += 1
            return fresh

    async def media(self, url: str, limit: int) -> Attachment:
        """The file a customer's message names, at most `limit` bytes."""
        host = (urlsplit(url).hostname or "").lower()
        if not any(host == h or host.endswith("." + h) for h in self._s.media_hosts):
            raise ChannelError(f"douyin: {host!r} is not one of channels.douyin.media_hosts: "
                               "not downloaded")
        try:
            data, kind, name = await self._api.read(url, {}, limit)
        except ApiAnswer as e:
            raise ChannelError(f"douyin: the file answered an error: error {_code(e.answer)}: "
                               f"{_description(e.answer)}") from None
        return Attachment(name or "", kind, data)

    async def close(self) -> None:
        await self._api.close()


def _code(answer: dict[str, Any]) -> int:
    for part in (answer.get("data"), answer.get("extra"), answer):
        if isinstance(part, dict):
            code = part.get("error_code") or part.get("err_no")
            if code:
                return int(code) if str(code).lstrip("-").isdigit() else -1
    return 0


def _description(answer: dict[str, Any]) -> str:
    for part in (answer.get("data"), answer.get("extra"), answer):
        if isinstance(part, dict) and (part.get("description") or part.get("err_msg")):
            return str(part.get("description") or part.get("err_msg"))[:200]
    return ""
