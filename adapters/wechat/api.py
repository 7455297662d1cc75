"""Replies through WeChat's customer-service message API, with a cached access token.

GET /cgi-bin/token?grant_type=client_credential&appid=&secret= answers {"access_token",
"expires_in"} (7200 s); the token is reused until `token_margin` seconds before it
expires, and fetched again once when WeChat says it is invalid or expired (40001,
40014, 42001: clocks differ, or it was revoked). The token is kept in the live state
(Redis when configured) with its expiry: every controller and the next start reuse it,
where each fetching its own would spend WeChat's daily token quota (2,000) and cut the
others' tokens short (a fetch leaves the previous token 5 minutes).
POST /cgi-bin/message/custom/send?access_token= {"touser", "msgtype": "text", "text":
{"content"}} answers {"errcode": 0, "errmsg": "ok"}.
GET /cgi-bin/media/get?access_token=&media_id= answers the file (its Content-Type, and
the name in Content-Disposition), or JSON {"errcode", "errmsg"} (40007: no such media;
WeChat keeps a customer's media 3 days).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from adapters.webhooks import ApiAnswer, JsonApi
from ctl.channels.contract import Attachment, ChannelError, Outgoing
from ctl.channels.settings import WechatSettings
from ctl.store.live import LiveState, MemoryLive

_STALE_TOKEN = frozenset({40001, 40014, 42001})


class WechatApi:
    def __init__(self, settings: WechatSettings, clock: Callable[[], float] = time.time,
                 live: LiveState | None = None) -> None:
        self._s = settings
        self._api = JsonApi("wechat", settings.api_base)
        self._clock = clock  # the wall clock: expiries are shared between processes
        self._live = live or MemoryLive()
        self._key = f"wechat:token:{settings.app_id}"
        self._token: str | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()  # one token request at a time, shared by all sends
        self.token_fetches = 0

    async def send(self, out: Outgoing) -> str | None:
        if not out.to.strip():
            raise ChannelError("wechat: no openid to send to")
        body = json.dumps({"touser": out.to, "msgtype": "text",
                           "text": {"content": out.text}}, ensure_ascii=False).encode()
        token = await self._access_token()
        answer = await self._post_send(token, body)
        if answer.get("errcode") in _STALE_TOKEN:
            answer = await self._post_send(await self._access_token(stale=token), body)
        _ok(answer, "message/custom/send")
        return None  # the API gives no message id

    async def media(self, media_id: str, limit: int) -> Attachment:
        """A customer's image or voice (MediaId), at most `limit` bytes."""
        token = await self._access_token()
        try:
            data, kind, name = await self._get_media(token, media_id, limit)
        except ApiAnswer as e:
            if e.answer.get("errcode") not in _STALE_TOKEN:
                _ok(e.answer, "media/get")  # names WeChat's errcode
                raise
            data, kind, name = await self._get_media(await self._access_token(stale=token),
                                                     media_id, limit)
        return Attachment(name or media_id, kind, data)

    async def _get_media(self, token: str, media_id: str, limit: int
                         ) -> tuple[bytes, str, str | None]:
        return await self._api.read("/cgi-bin/media/get",
                                    {"access_token": token, "media_id": media_id}, limit)

    async def _post_send(self, token: str, body: bytes) -> dict[str, Any]:
        return await self._api.call("POST", "/cgi-bin/message/custom/send",
                                    params={"access_token": token}, body=body)

    async def _access_token(self, stale: str | None = None) -> str:
        async with self._lock:
            if self._token and self._token != stale and self._clock() < self._until:
                return self._token
            raw = await self._live.get_value(self._key)
            kept = json.loads(raw) if raw else {}
            if kept.get("token") not in (None, stale) and self._clock() < kept["until"]:
                self._token, self._until = str(kept["token"]), float(kept["until"])
                return self._token
            if not self._s.app_id or not self._s.app_secret:
                raise ChannelError("wechat: channels.wechat.app_id and app_secret are needed "
                                   "to send")
            answer = await self._api.call("GET", "/cgi-bin/token", params={
                "grant_type": "client_credential", "appid": self._s.app_id,
                "secret": self._s.app_secret})
            _ok(answer, "token")
            token, expires = answer.get("access_token"), answer.get("expires_in", 7200)
            if not isinstance(token, str) or not isinstance(expires, int | float):
                raise ChannelError(f"wechat: /cgi-bin/token answered no token: {answer}")
            self.token_fetches += 1
            self._token = token
            self._until = self._clock() + max(0.0, expires - self._s.token_margin)
            await self._live.put_value(self._key, json.dumps({"token": token,
                                                              "until": self._until}))
            return token

    async def close(self) -> None:
        await self._api.close()


def _ok(answer: dict[str, Any], what: str) -> None:
    code = answer.get("errcode", 0)
    if code:
        raise ChannelError(f"wechat: {what} failed: errcode {code}: {answer.get('errmsg', '')}")
