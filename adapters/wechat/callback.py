"""WeChat's callback: URL verification, then signed (maybe encrypted) XML messages in.

WeChat waits 5 s for an answer and retries three times with the same MsgId, so a message
is acknowledged ("success") once stored or after `answer_within` seconds while storing
goes on; the MsgId makes the retries no-ops. Events carry no MsgId: WeChat documents
FromUserName + CreateTime as their key.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Protocol

from adapters.webhooks import Deadline, with_file
from adapters.wechat.crypto import MessageCrypt, check
from ctl.channels.contract import Attachment, Inbound, Received
from ctl.channels.service import ChannelService
from ctl.channels.settings import WechatSettings
from ctl.errors import BadRequest, Unauthorized


class Media(Protocol):
    async def media(self, media_id: str, limit: int) -> Attachment: ...


class WechatCallback:
    def __init__(self, channels: ChannelService, settings: WechatSettings,
                 clock: Callable[[], float] = time.time, media: Media | None = None,
                 max_bytes: int = 10 * 1024 * 1024) -> None:
        self._channels = channels
        self._media = media  # None: images and voice keep their MediaId only
        self._max_bytes = max_bytes
        self._s = settings
        self._token = settings.token or ""
        self._clock = clock
        self._crypt = MessageCrypt(settings.encoding_aes_key, settings.app_id) \
            if settings.encoding_aes_key else None
        self.deadline = Deadline("wechat", settings.answer_within)

    def verify_url(self, query: Mapping[str, str]) -> str:
        """The echostr to echo back when WeChat's GET is signed with our token."""
        self._signed(query)
        echo = query.get("echostr")
        if echo is None:
            raise BadRequest("wechat: echostr is missing")
        return echo

    async def handle(self, query: Mapping[str, str], body: bytes) -> str:
        """A POSTed message: verified, decrypted, handed in; what to answer WeChat."""
        self._signed(query)
        fields = parse_xml(body)
        if query.get("encrypt_type", "raw") == "aes":
            fields = self._decrypt(query, fields)
        inbound = to_inbound(fields)
        if inbound is None:
            return "success"  # an event that is no customer message (menu view, location)
        await self.deadline.run(self._receive(inbound))
        return "success"

    async def _receive(self, inbound: Inbound) -> Received:
        """Hand in, with the image or voice fetched into the message's attachments; a
        fetch that fails leaves the message without it (and says why), never lost."""
        inbound = await with_file(inbound, inbound.meta.get("media_id"),
                                  self._media.media if self._media else None, MEDIA,
                                  self._max_bytes)
        return await self._channels.receive(inbound)

    def _signed(self, query: Mapping[str, str]) -> None:
        ts, nonce = query.get("timestamp", ""), query.get("nonce", "")
        check(query.get("signature"), self._token, ts, nonce)
        self._fresh(ts)

    def _fresh(self, ts: str) -> None:
        try:
            at = float(ts)
        except ValueError:
            raise Unauthorized(f"wechat: timestamp {ts[:20]!r} is not a time") from None
        off = self._clock() - at
        if abs(off) > self._s.max_skew:
            raise Unauthorized(f"wechat: timestamp is {off:.0f} s off; the limit is "
                               f"{self._s.max_skew:.0f} s (stale or replayed)")

    def _decrypt(self, query: Mapping[str, str], fields: dict[str, str]) -> dict[str, str]:
        if self._crypt is None:
            raise BadRequest("wechat: an encrypted message, but channels.wechat."
                             "encoding_aes_key is not set")
        encrypted = fields.get("Encrypt")
        if not encrypted:
            raise BadRequest("wechat: encrypt_type=aes but the body has no Encrypt")
        check(query.get("msg_signature"), self._token, query.get("timestamp", ""),
              query.get("nonce", ""), encrypted, what="msg_signature")
        return parse_xml(self._crypt.decrypt(encrypted).encode())


# Message types whose MediaId media/get serves (video answers a URL instead).
MEDIA = {"image": ".jpg", "voice": ".amr"}


def parse_xml(body: bytes) -> dict[str, str]:
    """WeChat's flat <xml><Field>value</Field>...</xml> as a dict."""
    # No DTDs: entity expansion is the classic XML bomb, and WeChat never sends one.
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise BadRequest("wechat: XML with a DTD or entities is refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise BadRequest(f"wechat: the body is not XML: {e}") from None
    if root.tag != "xml":
        raise BadRequest(f"wechat: the root element is <{root.tag[:40]}>, not <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


def to_inbound(f: dict[str, str]) -> Inbound | None:
    """A customer message for the contract; None for events that are none."""
    sender, kind = f.get("FromUserName"), f.get("MsgType")
    if not sender or not kind:
        raise BadRequest("wechat: FromUserName and MsgType are required")
    meta = {"to": f.get("ToUserName", ""), "msg_type": kind}
    if kind == "event":
        event = f.get("Event", "").lower()
        if event not in ("subscribe", "unsubscribe"):
            return None
        text = "[subscribed]" if event == "subscribe" else "[unsubscribed]"
        ref = f"{sender}:{f.get('CreateTime', '')}:{event}"
        meta |= {"event": event, "event_key": f.get("EventKey", "")}
    else:
        text, extra = _content(kind, f)
        meta |= extra
        ref = f.get("MsgId") or f.get("MsgID") or f"{sender}:{f.get('CreateTime', '')}"
    return Inbound(channel="wechat", identity=("wechat_openid", sender), address=sender,
                   text=text, external_id=f"wechat:{ref}", thread=f"wechat:{sender}",
                   meta=meta)


def _content(kind: str, f: dict[str, str]) -> tuple[str, dict[str, str]]:
    if kind == "text":
        if not f.get("Content"):
            raise BadRequest("wechat: a text message without Content")
        return f["Content"], {}
    if kind == "image":
        return f"[image] {f.get('PicUrl', '')}".strip(), {
            "media_id": f.get("MediaId", ""), "pic_url": f.get("PicUrl", "")}
    if kind == "voice":
        # Recognition is WeChat's transcript, present when speech recognition is on.
        heard = f.get("Recognition")
        return (f"[voice] {heard}" if heard else "[voice]"), {
            "media_id": f.get("MediaId", ""), "format": f.get("Format", "")}
    return f"[{kind}]", {"media_id": f.get("MediaId", "")}
