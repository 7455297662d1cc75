"""Outbound SMS: the configured request template, filled and POSTed to the gateway."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from ctl.channels.contract import ChannelError, Outgoing
from ctl.channels.settings import SmsSettings
from ctl.customers.identity import normalize_phone


class SmsGateway:
    def __init__(self, settings: SmsSettings, region: str = "US") -> None:
        self._s = settings
        self._region = region
        self._http: aiohttp.ClientSession | None = None

    def body(self, out: Outgoing) -> str:
        """The request body: the template with each value JSON-escaped."""
        to = normalize_phone(out.to, self._region)
        if to is None:
            raise ChannelError(f"sms: {out.to!r} is not a phone number")
        values = {"to": to, "text": out.text, "sender": self._s.sender,
                  "message_id": out.message_id}
        body = self._s.send_body
        for key, value in values.items():
            body = body.replace("{" + key + "}", json.dumps(value, ensure_ascii=False)[1:-1])
        try:
            json.loads(body)
        except ValueError as e:
            raise ChannelError(f"sms: channels.sms.send_body is not JSON once filled: {e}",
                               ) from None
        return body

    async def send(self, out: Outgoing) -> str | None:
        if not self._s.send_url:
            raise ChannelError("sms: no gateway configured (channels.sms.send_url)")
        body = self.body(out)
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        headers = {"Content-Type": "application/json", **self._s.send_headers}
        try:
            async with self._http.post(self._s.send_url, data=body.encode(),
                                       headers=headers) as r:
                text = await r.text()
                if r.status >= 300:
                    raise ChannelError(f"sms: gateway answered {r.status}: {text[:200]}")
        except aiohttp.ClientError as e:
            raise ChannelError(f"sms: gateway {self._s.send_url}: {e}") from None
        return _field(text, self._s.id_field)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


def _field(text: str, name: str) -> str | None:
    try:
        answer: Any = json.loads(text)
    except ValueError:
        return None
    value = answer.get(name) if isinstance(answer, dict) else None
    return str(value) if value is not None else None
