"""Replies through Weibo's customer-service message API (发送客服消息).

POST {api_base}/2/messages/reply.json?access_token= with a form (x-www-form-urlencoded):
receiver_id, type=text, data=the JSON {"text": ...} (the form encoding is the URL
encoding Weibo asks for). Weibo allows replies within 48 h of the customer's message and
at most 300 characters per message: longer replies go as several. An error answers
{"error", "error_code", "request"}. The access token is the fan service's, from the
console (valid about a year): configured, not fetched.

A customer's image or voice is downloaded by its `tovfid` (the receiver's copy; `vfid` is
the sender's): GET {media_base}/2/mss/msget?access_token=&fid= answers the file, or JSON
{"error", "error_code"} (an expired file, a wrong token).
Assumption: the file's type is in Content-Type (images and AMR voice), as Weibo's
downloads answer; a file without a name is named by its fid.
"""

from __future__ import annotations

import json
from typing import Any

from adapters.webhooks import ApiAnswer, JsonApi
from ctl.channels.contract import Attachment, ChannelError, Outgoing
from ctl.channels.settings import WeiboSettings

MAX_CHARS = 300


class WeiboApi:
    def __init__(self, settings: WeiboSettings) -> None:
        self._token = settings.access_token
        self._api = JsonApi("weibo", settings.api_base)
        self._files = JsonApi("weibo", settings.media_base)

    async def send(self, out: Outgoing) -> str | None:
        if not out.to.strip().isdigit():
            raise ChannelError(f"weibo: {out.to!r} is not a Weibo uid to send to")
        if not self._token:
            raise ChannelError("weibo: channels.weibo.access_token is needed to send")
        sent = None
        for start in range(0, max(len(out.text), 1), MAX_CHARS):
            sent = await self._reply(out.to, out.text[start:start + MAX_CHARS])
        return sent

    async def _reply(self, to: str, text: str) -> str | None:
        answer = await self._api.call(
            "POST", "/2/messages/reply.json", params={"access_token": self._token},
            form={"receiver_id": to, "type": "text", "save_sender_box": "1",
                  "data": json.dumps({"text": text}, ensure_ascii=False)})
        if answer.get("error_code") or answer.get("error"):
            raise ChannelError(f"weibo: messages/reply failed: error_code "
                               f"{answer.get('error_code')}: {answer.get('error', '')}")
        ident: Any = answer.get("idstr") or answer.get("id")
        return f"weibo:out:{ident}" if ident else None

    async def media(self, fid: str, limit: int) -> Attachment:
        """A customer's image or voice by its file id, at most `limit` bytes."""
        if not self._token:
            raise ChannelError("weibo: channels.weibo.access_token is needed to download "
                               "files")
        try:
            data, kind, name = await self._files.read(
                "/2/mss/msget", {"access_token": self._token, "fid": fid}, limit)
        except ApiAnswer as e:
            raise ChannelError(f"weibo: mss/msget failed: error_code "
                               f"{e.answer.get('error_code')}: {e.answer.get('error', '')}"
                               ) from None
        return Attachment(name or fid, kind, data)

    async def close(self) -> None:
        await self._api.close()
        await self._files.close()
