"""What the platform adapters (WeChat, Weibo, Douyin) share: answering a platform's
webhook within its deadline while storing goes on, and calling its JSON API.

The platforms wait ~5 s for an answer and then retry the same message; the message's
own id makes a retry a no-op, so answering before storing finished loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import mimetypes
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from ctl.channels.contract import Attachment, ChannelError, Inbound, TooLarge
from ctl.errors import BadRequest

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # a platform's message is a few KiB


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The request's body; 413 past `limit` (read no further)."""
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise TooLarge(f"the body is larger than the limit of {limit} bytes")
    return body


def json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """`raw` as a JSON object, or BadRequest naming `what` and the problem."""
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise BadRequest(f"{what} is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return data


class Deadline:
    """Runs hand-ins, waiting at most `seconds` for each; slower ones keep running."""

    def __init__(self, channel: str, seconds: float) -> None:
        self._channel = channel
        self._seconds = seconds
        self._pending: set[asyncio.Task[Any]] = set()

    async def run(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait_for(asyncio.shield(task), self._seconds)
        except TimeoutError:
            # Still storing: keep it running; the platform's retry will find it stored.
            self._pending.add(task)
            task.add_done_callback(self._done)

    async def settle(self) -> None:
        """Wait for the hand-ins still running (tests, shutdown)."""
        await asyncio.gather(*self._pending, return_exceptions=True)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: a slow message failed: %s", self._channel, task.exception())


class ApiAnswer(ChannelError):
    """The platform answered JSON (an error) where a file was asked for."""

    def __init__(self, message: str, answer: dict[str, Any]) -> None:
        super().__init__(message)
        self.answer = answer


class Client:
    """An HTTP client session made on first use (in the running loop) and closed once."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


class JsonApi(Client):
    """A platform's HTTP API answering JSON objects; failures are ChannelError naming
    the channel and the URL."""

    def __init__(self, channel: str, base: str, timeout: float = 20.0) -> None:
        super().__init__(timeout)
        self.channel = channel
        self.base = base.rstrip("/")

    async def call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                   body: bytes | None = None, form: Mapping[str, str] | None = None,
                   headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = self.base + path
        sent = dict(headers or {})
        if body is not None:
            sent.setdefault("Content-Type", "application/json; charset=utf-8")
        try:
            async with self._session().request(method, url, params=params,
                                          data=body if body is not None else form,
                                          headers=sent) as r:
                text = await r.text()
                status = r.status
        except aiohttp.ClientError as e:
            raise ChannelError(f"{self.channel}: {url}: {e}") from None
        if status >= 300:  # the body says why (Weibo's error_code...)
            raise ChannelError(f"{self.channel}: {url} answered {status}: {text[:200]}")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ChannelError(f"{self.channel}: {url} answered no JSON object: {text[:200]}")
        return answer

    async def read(self, path: str, params: Mapping[str, str], limit: int
                   ) -> tuple[bytes, str, str | None]:
        """GET a file: (bytes, content type, file name). ChannelError past `limit` bytes
        (read no further); ApiAnswer when the platform answered JSON (its error). `path`
        may be a whole URL (a file on the platform's CDN)."""
        url = path if path.startswith(("http://", "https://")) else self.base + path
        try:
            async with self._session().get(url, params=params) as r:
                kind = r.headers.get("Content-Type", "application/octet-stream")
                if r.content_length is not None and r.content_length > limit:
                    raise ChannelError(f"{self.channel}: {url}: the file is "
                                       f"{r.content_length} bytes; the limit is {limit}")
                data = b""
                while len(data) <= limit and (chunk := await r.content.read(65536)):
                    data += chunk
                name = r.content_disposition.filename if r.content_disposition else None
                status = r.status
        except aiohttp.ClientError as e:
            raise ChannelError(f"{self.channel}: {url}: {e}") from None
        if len(data) > limit:
            raise ChannelError(f"{self.channel}: {url}: the file is over the limit of {limit} "
                               "bytes")
        # WeChat answers errors as JSON, sometimes labelled text/plain.
        if kind.startswith(("application/json", "text/plain")) \
                and data.lstrip().startswith(b"{"):
            with contextlib.suppress(ValueError):
                answer = json.loads(data)
                if isinstance(answer, dict):
                    raise ApiAnswer(f"{self.channel}: {url} answered {data[:200]!r}", answer)
        if status >= 300:
            raise ChannelError(f"{self.channel}: {url} answered {status}: {data[:200]!r}")
        return data, kind.split(";")[0].strip(), name


async def attach(inbound: Inbound, fetch: Callable[[], Awaitable[Attachment]]) -> Inbound:
    """`inbound` with the file `fetch` downloads as its attachment; when the download
    fails, without it and with the reason in `meta["media_error"]`: never lost."""
    try:
        att = await fetch()
    except ChannelError as e:
        return dataclasses.replace(inbound, meta={**inbound.meta, "media_error": str(e)[:300]})
    return dataclasses.replace(inbound, attachments=(att,))


async def with_file(inbound: Inbound, ref: str | None,
                    fetch: Callable[[str, int], Awaitable[Attachment]] | None,
                    exts: Mapping[str, str], limit: int) -> Inbound:
    """`inbound` with the file `ref` names fetched (at most `limit` bytes) when its type is
    one of `exts` (type -> the extension of a file the platform gives no name)."""
    kind = str(inbound.meta.get("msg_type"))
    if not ref or fetch is None or kind not in exts:
        return inbound

    async def one() -> Attachment:
        assert fetch is not None
        return named(await fetch(ref, limit), ref, exts[kind])
    return await attach(inbound, one)


def named(att: Attachment, stem: str, fallback: str = "") -> Attachment:
    """`att` named as the platform named it, else `stem` with its type's extension."""
    if "." in att.name:
        return att
    ext = mimetypes.guess_extension(att.content_type) or fallback
    return dataclasses.replace(att, name=stem + ext)
