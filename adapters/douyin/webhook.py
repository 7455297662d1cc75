"""Douyin's webhook: the URL check, then signed events; private messages to the contract.

As the Douyin Open Platform documents it (Webhooks 概述, 接收私信消息事件):
- Every request is a JSON POST {"event", "client_key", "from_user_id", "to_user_id",
  "content", "log_id"}; `X-Douyin-Signature` = hex SHA1 of client_secret + the raw body.
- Saving the URL in the console sends {"event": "verify_webhook", "content":
  {"challenge": N}}, answered with the JSON {"challenge": N}.
- `im_receive_msg` (scope im.direct_message): a customer's private message to the
  business account; `from_user_id` is the customer's open_id, `content` carries
  conversation_short_id, server_message_id, message_type (text, image, emoji, video,
  user_local_image, user_local_video, other...), create_time (ms) and user_infos (open_id,
  nick_name, avatar).
- Douyin gives up after 5 s and retries three times; the `Msg-Id` header and the
  server_message_id identify a message.

Assumptions, where the documentation is silent or unreachable:
- `content` is sometimes shown as an object and sometimes as a JSON string: both are
  read. A text message's words are in content.text.
- The signature covers the body but no timestamp, so an old request could be sent
  again: the message's server_message_id makes that a no-op (stored once), which is the
  replay protection here. `client_key`, when present, must be ours.
- An image, voice or file message (message_type image, user_local_image, voice, file,
  user_local_video...) names its file in content.resource_url, as the later versions of
  the event show; it is downloaded (only from `media_hosts`, Douyin's CDNs) into the
  message's attachments, named by the URL's last segment or the message id. A message
  without one, or whose download fails, is kept without it, the reason in its meta.
- Events other than im_receive_msg (im_send_msg: our own or the account's replies,
  entering the chat page, recalls, read receipts, authorizations) are acknowledged and
  not stored.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Protocol
from urllib.parse import urlsplit

from adapters.webhooks import Deadline, attach, json_object, named
from ctl.channels.contract import Attachment, Inbound, Received
from ctl.channels.service import ChannelService
from ctl.channels.settings import DouyinSettings
from ctl.errors import BadRequest, Unauthorized

# The prefix of a customer message's channel id; the sender answers the latest one.
MESSAGE_REF = "douyin:msg:"


class Media(Protocol):
    async def media(self, url: str, limit: int) -> Attachment: ...


def signature(secret: str, body: bytes) -> str:
    return hashlib.sha1(secret.encode() + body).hexdigest()


class DouyinWebhook:
    def __init__(self, channels: ChannelService, settings: DouyinSettings,
                 media: Media | None = None, max_bytes: int = 10 * 1024 * 1024) -> None:
        self._channels = channels
        self._media = media
        self._max_bytes = max_bytes
        self._s = settings
        self._secret = settings.client_secret or ""
        self.deadline = Deadline("douyin", settings.answer_within)

    async def handle(self, given: str | None, body: bytes) -> dict[str, Any]:
        """A signed event: the JSON to answer (the challenge, or {} once handed in)."""
        if not given:
            raise Unauthorized("douyin: X-Douyin-Signature is missing")
        # Bytes: compare_digest refuses str with non-ASCII characters.
        if not hmac.compare_digest(given.lower().encode(),
                                   signature(self._secret, body).encode()):
            raise Unauthorized("douyin: X-Douyin-Signature does not match (wrong "
                               "client_secret or tampered)")
        event = json_object(body, "douyin: the body")
        key = event.get("client_key")
        if key and self._s.client_key and key != self._s.client_key:
            raise Unauthorized(f"douyin: the event is for client_key {str(key)[:40]!r}, "
                               "not ours")
        kind = event.get("event")
        content = event.get("content")
        content = json_object(content, "douyin: content") if isinstance(content, str) else content
        if not isinstance(content, dict):
            raise BadRequest("douyin: content must be an object")
        if kind == "verify_webhook":
            return {"challenge": content.get("challenge")}
        if kind == "im_receive_msg":
            await self.deadline.run(self._receive(to_inbound(event, content)))
        return {}

    async def _receive(self, inbound: Inbound) -> Received:
        url, media = inbound.meta.get("resource_url"), self._media
        if url and media is not None:
            stem = inbound.meta["message_id"].lstrip("@")[:64] or "douyin"

            async def fetch() -> Attachment:
                assert media is not None
                got = await media.media(url, self._max_bytes)
                last = urlsplit(url).path.rsplit("/", 1)[-1]
                return named(Attachment(last if "." in last else got.name,
                                        got.content_type, got.data), stem)
            inbound = await attach(inbound, fetch)
        return await self._channels.receive(inbound)


def _text(value: Any, what: str, size: int = 300) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > size:
        raise BadRequest(f"douyin: {what} must be a non-empty string")
    return value


def to_inbound(event: dict[str, Any], content: dict[str, Any]) -> Inbound:
    sender = _text(event.get("from_user_id"), "from_user_id")
    conversation = _text(content.get("conversation_short_id"), "content.conversation_short_id")
    message = _text(content.get("server_message_id"), "content.server_message_id")
    kind = str(content.get("message_type") or "other")[:40]
    meta = {"msg_type": kind, "to": str(event.get("to_user_id") or ""),
            "create_time": str(content.get("create_time") or ""), "message_id": message}
    if kind == "text":
        text = _text(content.get("text"), "a text message's content.text", 10_000)
    else:
        text = f"[{kind}]"
        url = content.get("resource_url")
        if isinstance(url, str) and url.startswith(("https://", "http://")) \
                and len(url) <= 2000:
            meta["resource_url"] = url
    infos = content.get("user_infos")
    name = next((u.get("nick_name") for u in infos if isinstance(u, dict)
                 and u.get("open_id") == sender and isinstance(u.get("nick_name"), str)),
                None) if isinstance(infos, list) else None
    return Inbound(channel="douyin", identity=("douyin_openid", sender), address=sender,
                   text=text, name=name,
                   external_id=f"{MESSAGE_REF}{conversation}/{message}",
                   thread=f"douyin:{sender}",
                   meta=meta)
