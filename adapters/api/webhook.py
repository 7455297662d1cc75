"""Agents' replies to the platform: the channel's `Sender`.

With a webhook URL on the key, each reply is POSTed there as JSON
{"type": "message", "conversation", "contact", "message": {"id", "seq", "direction",
"text", "subject", "attachments", "at"}}, signed: `X-Ctl-Timestamp` (Unix seconds) and
`X-Ctl-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + the body, keyed by the
key's webhook secret>`. The timestamp inside the signature lets the platform refuse an
old request sent again. A 2xx answer marks the reply sent; anything else marks it failed
with the reason (the agent is told, the platform can still poll it). Without a URL the
reply is sent as soon as it is stored: the platform polls for it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import aiohttp

from adapters.api.keys import ApiKeys
from adapters.webhooks import Client
from ctl.channels.contract import ChannelError, Outgoing


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookSender(Client):
    def __init__(self, keys: ApiKeys, timeout: float = 10.0) -> None:
        super().__init__(timeout)
        self._keys = keys

    async def send(self, out: Outgoing) -> str | None:
        _, key_id, conversation = (out.thread or "").split(":", 2) \
            if (out.thread or "").count(":") >= 2 else ("", "", "")
        platform = await self._keys.get(key_id) if key_id else None
        if platform is None:
            raise ChannelError(f"api: contact {out.contact_id} has no platform to send to")
        sent = f"{key_id}:{out.message_id}"  # what the platform's reports name
        if not platform.webhook_url:
            return sent
        body = json.dumps({
            "type": "message", "conversation": conversation, "contact": out.contact_id,
            "message": {"id": out.message_id, "seq": out.seq, "direction": "out",
                        "text": out.text, "subject": out.subject,
                        "attachments": [{"name": a.name, "content_type": a.content_type,
                                         "size": len(a.data)} for a in out.attachments],
                        "at": datetime.now(UTC).isoformat()}},
            ensure_ascii=False).encode()
        ts = str(int(time.time()))
        try:
            async with self._session().post(platform.webhook_url, data=body, headers={
                    "Content-Type": "application/json", "X-Ctl-Timestamp": ts,
                    "X-Ctl-Signature": signature(platform.webhook_secret, ts, body)}) as r:
                if r.status >= 300:
                    answer = (await r.text())[:200]
                    raise ChannelError(f"api: {platform.name}'s webhook answered "
                                       f"{r.status}: {answer}")
        except aiohttp.ClientError as e:
            raise ChannelError(f"api: {platform.name}'s webhook: {e}") from None
        return sent
