"""Weibo's message push: URL verification, then signed JSON messages in.

As Weibo's fan-service documentation (消息推送服务, Messages_api_start) states it:
- The operator turns on developer mode with a URL and an APPKEY; that app's App Secret
  signs every request: `signature` = hex SHA1 of appsecret, `timestamp` and `nonce`
  sorted and concatenated, in the query string. The URL check is a GET with `echostr`,
  echoed back when the signature holds.
- Messages are POSTed as JSON {"type", "sender_id", "receiver_id", "created_at", "text",
  "data"}; types text, position, voice and image (`data.vfid`/`tovfid`: the file ids),
  event (`data.subtype`: follow, unfollow, subscribe, unsubscribe, scan, click...) and
  mention. Unknown types are to be ignored. A blank answer means "no passive reply".
- Weibo waits 5 s and retries three times; messages carry no id, and the documentation
  suggests sender_id + created_at as the key.

Assumptions, where the documentation is silent or unreachable:
- The example timestamp is in milliseconds (1397022061823); both seconds and
  milliseconds are read.
- The signature covers only the query, not the body. So a seen timestamp+nonce is
  remembered (for `max_skew`) with a digest of its body: the same request again (a retry)
  passes and is stored once, another body under it is a replay and refused.
- created_at has one-second resolution, so the message key adds a digest of the
  message's content: two different messages in one second are both kept.
- Only the JSON format is read (not the WeChat-compatible XML mode).
- An image's or voice's file is downloaded by its tovfid (api.py) into the message's
  attachments, named `<fid>.jpg` / `<fid>.amr` when Weibo gives no name; a download that
  fails leaves the message without it, the reason kept in its meta.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from adapters.webhooks import Deadline, json_object, with_file
from ctl.channels.contract import Attachment, Inbound, Received
from ctl.channels.service import ChannelService
from ctl.channels.settings import WeiboSettings
from ctl.errors import BadRequest, Unauthorized

_FOLLOW = {"follow": "[followed]", "subscribe": "[subscribed]",
           "unfollow": "[unfollowed]", "unsubscribe": "[unsubscribed]"}


_MEDIA = {"image": ".jpg", "voice": ".amr"}


class Media(Protocol):
    async def media(self, fid: str, limit: int) -> Attachment: ...


def signature(secret: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted((secret, timestamp, nonce))).encode()).hexdigest()


class WeiboPush:
    def __init__(self, channels: ChannelService, settings: WeiboSettings,
                 clock: Callable[[], float] = time.time, media: Media | None = None,
                 max_bytes: int = 10 * 1024 * 1024) -> None:
        self._channels = channels
        self._media = media  # None: images and voice keep their file ids only
        self._max_bytes = max_bytes
        self._s = settings
        self._secret = settings.app_secret or ""
        self._clock = clock
        self.deadline = Deadline("weibo", settings.answer_within)
        self._seen: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def verify_url(self, query: Mapping[str, str]) -> str:
        """The echostr to echo back when Weibo's GET is signed with our App Secret."""
        self._signed(query)
        echo = query.get("echostr")
        if echo is None:
            raise BadRequest("weibo: echostr is missing")
        return echo

    async def handle(self, query: Mapping[str, str], body: bytes) -> str:
        """A pushed message: verified, handed in; what to answer Weibo (blank: no reply)."""
        self._signed(query)
        self._not_replayed(query, body)
        inbound = to_inbound(json_object(body, "weibo: the body"))
        if inbound is not None:
            await self.deadline.run(self._receive(inbound))
        return ""

    async def _receive(self, inbound: Inbound) -> Received:
        inbound = await with_file(inbound, inbound.meta.get("tovfid") or inbound.meta.get("vfid"),
                                  self._media.media if self._media else None, _MEDIA,
                                  self._max_bytes)
        return await self._channels.receive(inbound)

    def _signed(self, query: Mapping[str, str]) -> None:
        given = query.get("signature")
        ts, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not given:
            raise Unauthorized("weibo: the signature is missing")
        # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
        if not hmac.compare_digest(given.lower().encode(),
                                   signature(self._secret, ts, nonce).encode()):
            raise Unauthorized("weibo: the signature does not match (wrong App Secret or "
                               "tampered)")
        try:
            at = float(ts)
        except ValueError:
            raise Unauthorized(f"weibo: timestamp {ts[:20]!r} is not a time") from None
        if at > 1e11:  # milliseconds, as in Weibo's example
            at /= 1000.0
        off = self._clock() - at
        if abs(off) > self._s.max_skew:
            raise Unauthorized(f"weibo: timestamp is {off:.0f} s off; the limit is "
                               f"{self._s.max_skew:.0f} s (stale or replayed)")

    def _not_replayed(self, query: Mapping[str, str], body: bytes) -> None:
        now = self._clock()
        while self._seen and next(iter(self._seen.values()))[0] < now - self._s.max_skew:
            self._seen.popitem(last=False)
        key = f"{query.get('timestamp', '')}:{query.get('nonce', '')}"
        digest = hashlib.sha256(body).hexdigest()
        seen = self._seen.get(key)
        if seen is not None and seen[1] != digest:
            raise Unauthorized("weibo: this timestamp and nonce were used for another body "
                               "(replayed)")
        if seen is None:
            self._seen[key] = (now, digest)


def _uid(value: Any) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isdigit() or len(text) > 20:
        raise BadRequest(f"weibo: sender_id must be a Weibo uid (digits), not {value!r:.40}")
    return text


def to_inbound(m: dict[str, Any]) -> Inbound | None:
    """A customer message for the contract; None for what is none (other events,
    mentions, types Weibo added later)."""
    kind, sender = m.get("type"), _uid(m.get("sender_id"))
    raw_data, raw_text = m.get("data"), m.get("text")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    text: str = raw_text if isinstance(raw_text, str) else ""
    meta: dict[str, Any] = {"msg_type": kind, "to": str(m.get("receiver_id", ""))}
    if kind == "text":
        if not text.strip():
            raise BadRequest("weibo: a text message without text")
    elif kind == "position":
        meta |= {"latitude": str(data.get("latitude", "")),
                 "longitude": str(data.get("longitude", ""))}
        text = f"[position] {text}".strip()
    elif kind in ("image", "voice"):
        meta |= {"vfid": str(data.get("vfid", "")), "tovfid": str(data.get("tovfid", ""))}
        text = f"[{kind}]"
    elif kind == "event":
        subtype = str(data.get("subtype", "")).lower()
        if subtype not in _FOLLOW:
            return None
        text = _FOLLOW[subtype]
        meta |= {"event": subtype, "event_key": str(data.get("key", ""))}
    else:
        return None
    created = str(m.get("created_at", ""))[:40]
    content = hashlib.sha1(json.dumps([kind, m.get("text"), m.get("data")], sort_keys=True,
                                      ensure_ascii=False, default=str).encode()).hexdigest()
    return Inbound(channel="weibo", identity=("weibo_uid", sender), address=sender,
                   text=text, external_id=f"weibo:{sender}:{created}:{content[:16]}",
                   thread=f"weibo:{sender}", meta=meta)
