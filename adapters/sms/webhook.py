"""Inbound SMS webhooks: signature, freshness and replay checks, then the contract.

The gateway signs `"<X-Timestamp>.<raw body>"` with HMAC-SHA256 and the shared secret,
hex, in `X-Signature`. A missing or wrong signature, a timestamp outside `max_skew`, or
a signature seen before within that window (a replay) is refused with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable

from adapters.webhooks import json_object
from ctl.channels.contract import Inbound, Received
from ctl.channels.service import ChannelService
from ctl.errors import BadRequest, CtlError, Unauthorized


class Replayed(CtlError):
    status = 409
    code = "replayed"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                    hashlib.sha256).hexdigest()


class SmsWebhook:
    def __init__(self, channels: ChannelService, secret: str, max_skew: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._channels = channels
        self._secret = secret
        self._skew = max_skew
        self._clock = clock
        # Signatures seen within the window (per controller; the message id dedupes the
        # rest).
        self._seen: OrderedDict[str, float] = OrderedDict()

    def verify(self, timestamp: str | None, signature: str | None, body: bytes) -> None:
        if not timestamp or not signature:
            raise Unauthorized("sms webhook: X-Timestamp and X-Signature are required")
        try:
            at = float(timestamp)
        except ValueError:
            raise Unauthorized(f"sms webhook: X-Timestamp {timestamp!r} is not a time") from None
        now = self._clock()
        if abs(now - at) > self._skew:
            raise Unauthorized(f"sms webhook: timestamp is {now - at:.0f} s off; the limit is "
                               f"{self._skew:.0f} s (stale or replayed)")
        if not hmac.compare_digest(signature.lower().encode(),
                                                     sign(self._secret, timestamp, body).encode()):
            raise Unauthorized("sms webhook: the signature does not match")
        while self._seen and next(iter(self._seen.values())) < now - self._skew:
            self._seen.popitem(last=False)
        if signature in self._seen:
            raise Replayed("sms webhook: this exact request was received already")
        self._seen[signature] = now

    async def inbound(self, body: bytes) -> Received:
        """{"from", "text", "id", "to"?}: a customer's SMS."""
        data = json_object(body, "sms webhook: the body")
        sender, text = data.get("from"), data.get("text")
        if not isinstance(sender, str) or not isinstance(text, str):
            raise BadRequest('sms webhook: "from" and "text" (strings) are required')
        ref = data.get("id")
        return await self._channels.receive(Inbound(
            channel="sms", identity=("phone", sender), address=sender, text=text,
            external_id=f"sms:{ref}" if ref else None, thread=f"sms:{sender}",
            meta={"to": str(data.get("to") or "")}))

    async def status(self, body: bytes) -> bool:
        """{"id", "status": delivered|failed|sent, "reason"?}: a delivery receipt."""
        data = json_object(body, "sms webhook: the body")
        ref, status = data.get("id"), data.get("status")
        if not isinstance(ref, str) or not isinstance(status, str):
            raise BadRequest('sms status: "id" and "status" (strings) are required')
        reason = data.get("reason")
        return await self._channels.status("sms", ref, status,
                                           str(reason) if reason is not None else None)
