"""ARI REST client on plain aiohttp. A 404 on a channel becomes `NoSuchChannel`.

Requests travel over the app's events websocket (`RESTRequest` messages, which Asterisk
releases since 2025 accept; 22.10 does) once a probe on it was answered, else over HTTP;
see `attach`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from prometheus_client import Histogram

from ctl.errors import NoSuchChannel, NotFound, TelephonyError, TelephonyUnavailable

log = logging.getLogger(__name__)

ARI_LATENCY = Histogram("ctl_ari_request_seconds", "ARI REST request latency",
                        ["method", "transport"])
TIMEOUT, PROBE_TIMEOUT = 10.0, 2.0


class AriClient:
    def __init__(self, base_url: str, user: str, password: str, app: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self._auth = aiohttp.encode_basic_auth(user, password)
        self._http: aiohttp.ClientSession | None = None
        # The events websocket while it carries requests; None: HTTP.
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_refused = False  # a probe went unanswered: this Asterisk cannot
        self._pending: dict[str, asyncio.Future[tuple[int, str]]] = {}
        self._ids = itertools.count()
        self._probe: asyncio.Task[None] | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # NOTE: one pooled session; ARI is on loopback so keep-alive saves a handshake
            # per request on the hot answer/play path.
            self._http = aiohttp.ClientSession(
                headers={"Authorization": self._auth},
                timeout=aiohttp.ClientTimeout(total=10),
                connector=aiohttp.TCPConnector(limit=200),
            )
        return self._http

    @property
    def over_websocket(self) -> bool:
        """Whether requests go over the events websocket now (else HTTP)."""
        return self._ws is not None

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + f"/ari/events?app={self.app}"

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self._http is not None:
            await self._http.close()

    async def request(self, method: str, path: str, *, http: bool = False,
                      **params: Any) -> Any:
        """`http`: never over the websocket, where Asterisk serves one request at a time
        (for requests that create channels: they may take a while)."""
        body = params.pop("json", None)
        query = {k: _q(v) for k, v in params.items() if v is not None}
        started, ws = time.perf_counter(), None if http else self._ws
        try:
            if ws is not None:
                try:
                    status, text = await self._over_ws(ws, method, path, query, body)
                except _Unsent:  # the websocket is closing: HTTP can still take it
                    ws = None
            if ws is None:
                status, text = await self._over_http(method, path, query, body)
        finally:
            ARI_LATENCY.labels(method, "http" if ws is None else "ws").observe(
                time.perf_counter() - started)
        if status == 404:
            if path.startswith("/channels/"):
                raise NoSuchChannel(f"channel {path.split('/')[2]} is gone")
            raise NotFound(f"ARI {method} {path}: {text}")
        if status >= 400:
            raise TelephonyError(f"ARI {method} {path} -> {status}: {text}")
        if not text:
            return None
        return json.loads(text)

    async def _over_http(self, method: str, path: str, query: dict[str, str],
                         body: Any) -> tuple[int, str]:
        try:
            async with self.http.request(method, f"{self.base_url}/ari{path}", params=query,
                                         json=body) as r:
                return r.status, await r.text()
        except (aiohttp.ClientConnectionError, TimeoutError) as e:
            raise TelephonyUnavailable(f"ARI {method} {path}: {e or type(e).__name__}") from e

    async def _over_ws(self, ws: aiohttp.ClientWebSocketResponse, method: str, path: str,
                       query: dict[str, str], body: Any) -> tuple[int, str]:
        request_id = str(next(self._ids))
        message: dict[str, Any] = {"type": "RESTRequest", "request_id": request_id,
                                   "method": method, "uri": path[1:]}
        if query:
            message["uri"] += "?" + urlencode(query)
        if body is not None:
            message["content_type"] = "application/json"
            message["message_body"] = json.dumps(body)
        future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            try:
                await ws.send_str(json.dumps(message))
            except aiohttp.ClientConnectionError as e:
                raise _Unsent from e
            async with asyncio.timeout(TIMEOUT):
                return await future
        except (aiohttp.ClientConnectionError, TimeoutError) as e:
            raise TelephonyUnavailable(f"ARI {method} {path}: {e or type(e).__name__}") from e
        finally:
            self._pending.pop(request_id, None)

    def attach(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The events websocket is up: requests go over it once Asterisk answers a probe
        there (no HTTP request to parse, no second connection). An Asterisk that predates
        REST over the websocket never answers: this client then stays on HTTP."""
        if not self._ws_refused:
            self._probe = asyncio.create_task(self._probe_ws(ws))

    def detach(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The websocket closed: what was asked over it is unanswered (as when an HTTP
        connection breaks mid-request); new requests go over HTTP until it is back."""
        if self._probe is not None:
            self._probe.cancel()
        if self._ws is not ws:
            return
        self._ws = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TelephonyUnavailable("ARI websocket closed"))

    def on_response(self, message: dict[str, Any]) -> None:
        """A RESTResponse from the websocket reader (never blocks)."""
        future = self._pending.get(str(message.get("request_id")))
        if future is not None and not future.done():
            future.set_result((int(message["status_code"]),
                               str(message.get("message_body") or "")))

    async def _probe_ws(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await self._over_ws(ws, "GET", "/asterisk/ping", {}, None)
        except (TelephonyUnavailable, TimeoutError):
            if ws.closed:
                return
            log.info("Asterisk does not take ARI requests over the websocket: HTTP it is")
            self._ws_refused = True
            return
        self._ws = ws

    # The verbs the controller uses; each is one REST call.
    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"/channels/{channel_id}", reason=reason)

    async def play(self, channel_id: str, media: str | list[str], playback_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/play/{playback_id}", media=media)

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{playback_id}")

    async def playback_exists(self, playback_id: str) -> bool:
        try:
            await self.request("GET", f"/playbacks/{playback_id}")
        except NotFound:
            return False
        return True

    async def endpoint_online(self, tech: str, resource: str) -> bool:
        """Whether the endpoint has a registered contact (an unknown one is offline)."""
        try:
            found = await self.request("GET", f"/endpoints/{tech}/{resource}")
        except NotFound:
            return False
        return bool(found.get("state") == "online")

    async def continue_dialplan(self, channel_id: str, context: str | None = None,
                                extension: str | None = None, priority: int | None = None
                                ) -> None:
        await self.request("POST", f"/channels/{channel_id}/continue", context=context,
                           extension=extension, priority=priority)

    async def originate(self, endpoint: str, *, app: str | None = None,
                        app_args: str | None = None, channel_id: str | None = None,
                        other_channel_id: str | None = None,
                        caller_id: str | None = None, timeout: int = 30,
                        variables: dict[str, str] | None = None) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "POST", "/channels", http=True, endpoint=endpoint, app=app or self.app,
            appArgs=app_args, channelId=channel_id, otherChannelId=other_channel_id,
            callerId=caller_id, timeout=timeout,
            json={"variables": variables} if variables else None,
        )

    async def start_moh(self, channel_id: str, moh_class: str = "default") -> None:
        await self.request("POST", f"/channels/{channel_id}/moh", mohClass=moh_class)

    async def stop_moh(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{channel_id}/moh")

    async def ring(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/ring")

    async def create_bridge(self, bridge_id: str, kind: str = "mixing") -> None:
        await self.request("POST", f"/bridges/{bridge_id}", type=kind)

    async def add_to_bridge(self, bridge_id: str, *channel_ids: str) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/addChannel",
                           channel=",".join(channel_ids))

    async def remove_from_bridge(self, bridge_id: str, *channel_ids: str) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/removeChannel",
                           channel=",".join(channel_ids))

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{bridge_id}")

    async def record_bridge(self, bridge_id: str, name: str, fmt: str = "wav") -> None:
        """Record the bridge's mix to <spool>/recording/<name>.<fmt> until it is destroyed."""
        await self.request("POST", f"/bridges/{bridge_id}/record", name=name, format=fmt,
                           ifExists="overwrite", beep=False, terminateOn="none")

    async def record_channel(self, channel_id: str, name: str, *, max_seconds: int,
                             beep: bool, max_silence: int = 5, fmt: str = "wav") -> None:
        """Record what the caller says to <spool>/recording/<name>.<fmt>: # ends it."""
        await self.request("POST", f"/channels/{channel_id}/record", name=name, format=fmt,
                           maxDurationSeconds=max_seconds, maxSilenceSeconds=max_silence,
                           ifExists="overwrite", beep=beep, terminateOn="#")

    async def snoop(self, channel_id: str, snoop_id: str, *, spy: str, whisper: str,
                    app_args: str) -> None:
        """A channel in our app that hears `channel_id` (spy: in|out|both|none) and
        speaks into it (whisper: the direction its own audio is mixed into)."""
        await self.request("POST", f"/channels/{channel_id}/snoop", http=True, spy=spy,
                           whisper=whisper, app=self.app, appArgs=app_args, snoopId=snoop_id)

    async def mute(self, channel_id: str, direction: str = "in") -> None:
        await self.request("POST", f"/channels/{channel_id}/mute", direction=direction)

    async def unmute(self, channel_id: str, direction: str = "in") -> None:
        await self.request("DELETE", f"/channels/{channel_id}/mute", direction=direction)

    async def set_var(self, channel_id: str, variable: str, value: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/variable", variable=variable,
                           value=value)

    async def bridge(self, bridge_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/bridges/{bridge_id}")  # type: ignore[no-any-return]

    async def channels(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/channels")  # type: ignore[no-any-return]

    async def channel(self, channel_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/channels/{channel_id}")  # type: ignore[no-any-return]

    async def bridges(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/bridges")  # type: ignore[no-any-return]

    async def application(self, name: str | None = None) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "GET", f"/applications/{name or self.app}")

    async def ignore_events(self, *types: str) -> None:
        """Asterisk stops sending this app events of these types."""
        await self.request("PUT", f"/applications/{self.app}/eventFilter",
                           json={"disallowed": [{"type": t} for t in types]})

    async def info(self) -> dict[str, Any]:
        return await self.request("GET", "/asterisk/info")  # type: ignore[no-any-return]

    async def get_var(self, channel_id: str, variable: str) -> str:
        r = await self.request("GET", f"/channels/{channel_id}/variable", variable=variable)
        return str(r.get("value", ""))


class _Unsent(Exception):
    """The websocket could not take the request: nothing reached Asterisk."""


def _q(v: Any) -> str:
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)

