"""ARI REST client on plain aiohttp. A 404 on a channel becomes `NoSuchChannel`."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
from prometheus_client import Histogram

from ctl.errors import NoSuchChannel, NotFound, TelephonyError, TelephonyUnavailable

ARI_LATENCY = Histogram("ctl_ari_request_seconds", "ARI REST request latency", ["method"])


class AriClient:
    def __init__(self, base_url: str, user: str, password: str, app: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self._auth = aiohttp.encode_basic_auth(user, password)
        self._http: aiohttp.ClientSession | None = None

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
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + f"/ari/events?app={self.app}"

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def request(self, method: str, path: str, **params: Any) -> Any:
        body = params.pop("json", None)
        query = {k: _q(v) for k, v in params.items() if v is not None}
        started = time.perf_counter()
        try:
            async with self.http.request(method, f"{self.base_url}/ari{path}", params=query,
                                         json=body) as r:
                text = await r.text()
                status = r.status
        except (aiohttp.ClientConnectionError, TimeoutError) as e:
            raise TelephonyUnavailable(f"ARI {method} {path}: {e or type(e).__name__}") from e
        finally:
            ARI_LATENCY.labels(method).observe(time.perf_counter() - started)
        if status == 404:
            if path.startswith("/channels/"):
                raise NoSuchChannel(f"channel {path.split('/')[2]} is gone")
            raise NotFound(f"ARI {method} {path}: {text}")
        if status >= 400:
            raise TelephonyError(f"ARI {method} {path} -> {status}: {text}")
        if not text:
            return None
        return json.loads(text)

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
            "POST", "/channels", endpoint=endpoint, app=app or self.app, appArgs=app_args,
            channelId=channel_id, otherChannelId=other_channel_id, callerId=caller_id,
            timeout=timeout,
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
        await self.request("POST", f"/channels/{channel_id}/snoop", spy=spy,
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

    async def info(self) -> dict[str, Any]:
        return await self.request("GET", "/asterisk/info")  # type: ignore[no-any-return]

    async def get_var(self, channel_id: str, variable: str) -> str:
        r = await self.request("GET", f"/channels/{channel_id}/variable", variable=variable)
        return str(r.get("value", ""))


def _q(v: Any) -> str:
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)

