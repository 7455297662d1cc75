"""AMI on panoramisk: reconnects by itself; treated as lossy, resynced after each login."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk import Manager
from prometheus_client import Gauge

from ctl.errors import TelephonyError, TelephonyUnavailable

log = logging.getLogger(__name__)

AMI_CONNECTED = Gauge("ctl_ami_connected", "1 while logged in to AMI")
ASTERISK_CHANNELS = Gauge("ctl_asterisk_channels", "channels Asterisk reported at last resync")


class _Manager(Manager):  # type: ignore[misc]
    # NOTE: panoramisk reconnects from connection_lost even after close(); a closing flag
    # stops that loop so shutdown does not leave timers reconnecting forever.
    closing = False

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        if self.closing:
            return None
        return super().connect(*args, **kwargs)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing:
            self._connected = False
            return
        super().connection_lost(exc)


class AmiClient:
    def __init__(self, host: str, port: int, user: str, secret: str,
                 on_login: Callable[[], Awaitable[None]] | None = None) -> None:
        self._cfg = {"host": host, "port": port, "username": user, "secret": secret}
        self._on_login = on_login
        self._mgr: _Manager | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()

    @property
    def connected(self) -> bool:
        return bool(self._mgr and self._mgr.authenticated and self._mgr._connected)

    def start(self) -> None:
        # NOTE: panoramisk binds to the loop at construction: create it inside the loop.
        self._mgr = _Manager(loop=asyncio.get_running_loop(), reconnect_timeout=1,
                             ping_delay=5, ping_interval=5, events="off",
                             on_login=self._logged_in, on_disconnect=self._lost,
                             log=log, **self._cfg)
        self._mgr.connect()

    async def close(self) -> None:
        if self._mgr is not None:
            self._mgr.closing = True
            self._mgr.close()
        for t in self._tasks:
            t.cancel()
        AMI_CONNECTED.set(0)

    def _logged_in(self, _mgr: Manager) -> None:
        AMI_CONNECTED.set(1)
        self.ready.set()
        log.info("AMI logged in")
        task = asyncio.get_running_loop().create_task(self._resync())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lost(self, _mgr: Manager, _exc: Exception | None) -> None:
        self.ready.clear()
        AMI_CONNECTED.set(0)

    async def _resync(self) -> None:
        with contextlib.suppress(TelephonyError):
            channels = await self.action("CoreShowChannels")
            ASTERISK_CHANNELS.set(sum(1 for m in channels if m.get("Event") == "CoreShowChannel"))
        if self._on_login is not None:
            await self._on_login()

    async def action(self, name: str, *, as_list: bool = True,
                     **fields: str) -> list[dict[str, str]]:
        """`as_list`: the action answers with an event list. NOTE: panoramisk never
        completes an as_list action that answers with one message (e.g. Command)."""
        if not self.connected or self._mgr is None:
            raise TelephonyUnavailable("AMI is not connected")
        try:
            resp = await asyncio.wait_for(
                self._mgr.send_action({"Action": name, **fields}, as_list=as_list), 10)
        except TimeoutError as e:
            raise TelephonyUnavailable(f"AMI {name}: no answer in 10s") from e
        messages = [dict(m) for m in (resp if isinstance(resp, list) else [resp])]
        if messages and messages[0].get("Response") == "Error":
            raise TelephonyError(f"AMI {name}: {messages[0].get('Message')}")
        return messages

    async def command(self, cli: str) -> str:
        """Run an Asterisk CLI command (e.g. `module reload res_pjsip.so`)."""
        messages = await self.action("Command", as_list=False, Command=cli)
        out = messages[0].get("Output", "") if messages else ""
        return "\n".join(out) if isinstance(out, list) else str(out)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError as e:
            raise TelephonyUnavailable(f"AMI did not log in within {timeout}s") from e
