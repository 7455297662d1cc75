"""Test harness: free ports, the project's Asterisk, ctl as a real process, scripted callers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from ctl.telephony.ari import AriClient
from ctl.telephony.events import EventStream, channel_of

T = TypeVar("T")
PROJECT = Path(__file__).resolve().parents[2]


def slot(span: int, offset: int = 0) -> int:
    """A number in range(span) for fixed shares of the machine (Redis databases, RTP port
    ranges): different for each xdist worker of one run (offset 0 and 1 are one worker's),
    and most likely different from another run on the same machine."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    return (zlib.crc32(run.encode()) + 2 * worker + offset) % span


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        # SIP needs the same number free on UDP and TCP-free neighbours are not required.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 10.0,
                     what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy: for state another process writes."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class CtlProcess:
    """`ctl serve` as a separate OS process, so tests can kill it like a crash would."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.port = int(env["CTL_HTTP_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, wait_ari: bool = True) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "ctl", "serve"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT)
        await eventually(lambda: self._healthy(wait_ari), 30, "ctl to become healthy")

    async def _healthy(self, need_ari: bool) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"ctl exited with {self.proc.returncode}:\n{self.tail()}")
        return bool(await self.health(need_ari))

    async def health(self, need_ari: bool = True) -> dict[str, Any] | None:
        try:
            async with aiohttp.ClientSession() as http, \
                    http.get(f"http://127.0.0.1:{self.port}/healthz") as r:
                body: dict[str, Any] = await r.json()
        except (aiohttp.ClientError, OSError):
            return None
        ari = body["checks"]["ari"]
        if need_ari and (not ari["ok"] or ari.get("standby")):
            return None  # not connected, or not leading (yet: a killed leader's lease ends)
        return body

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


class Caller:
    """Scripted callers: Local channels originated into a test app, with their events."""

    def __init__(self, ari: AriClient) -> None:
        self.ari = ari
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._changed = asyncio.Condition()
        self.stream = EventStream(ari, self._on_event)

    def _on_event(self, event: dict[str, Any]) -> None:
        cid = channel_of(event)
        if cid is not None:
            self.events[cid].append(event)
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def rtp_report(self) -> str:
        """Every SIP channel's RTP counters, to say where audio stopped when a test's
        phone heard nothing."""
        lines = []
        for channel in await self.ari.channels():
            if not channel["name"].startswith("PJSIP/"):
                continue
            try:
                stats = await self.ari.request("GET", f"/channels/{channel['id']}/rtp_statistics")
            except Exception as e:  # gone meanwhile
                stats = {"error": str(e)}
            lines.append(f"  {channel['name']} ({channel['id']}): sent {stats.get('txcount')}, "
                         f"received {stats.get('rxcount')}, local {stats.get('local_ssrc')} "
                         f"remote {stats.get('remote_ssrc')}")
        lines += [f"  bridge {b['id']} {b.get('technology')}: {b.get('channels')}"
                  for b in await self.ari.bridges()]
        return "\n".join(["RTP on the Asterisk:", *lines])

    @contextlib.asynccontextmanager
    async def explains_audio(self) -> AsyncIterator[None]:
        """An AssertionError inside carries the RTP counters and bridges of the moment."""
        try:
            yield
        except AssertionError as e:
            raise AssertionError(f"{e}\n{await self.rtp_report()}") from e

    async def call(self, number: str, caller_id: str = "+15551230001",
                   context: str = "public") -> tuple[str, str]:
        """Dial `number` from a Local/n pair; returns (our leg, in this app, and the leg
        that enters the dialplan/ctl). For calls nobody listens to: a handset bridged with
        our leg now and then stopped getting audio in full runs, so calls with ears
        dial_in()."""
        ours, theirs = uuid.uuid4().hex, uuid.uuid4().hex
        await self.ari.originate(f"Local/{number}@{context}/n", channel_id=ours,
                                 other_channel_id=theirs, caller_id=caller_id)
        return ours, theirs

    async def dial_in(self, host: str, port: int, number: str,
                      caller_id: str = "+15551230001", context: str = "public") -> str:
        """A customer's handset (a SIP phone at host:port) calls `number`: Asterisk rings it
        through the anonymous endpoint, as it would a phone outside, and once it answers
        takes its channel into the dialplan like an incoming call. Returns that channel's
        id: the caller ctl answers."""
        channel = uuid.uuid4().hex
        await self.ari.request("POST", "/channels", http=True,
                               endpoint=f"PJSIP/anonymous/sip:customer@{host}:{port}",
                               extension=number, context=context, priority=1,
                               callerId=caller_id, channelId=channel, timeout=30)
        return channel

    async def wait(self, channel_id: str, event_type: str, timeout: float = 15.0
                   ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((e for e in self.events[channel_id] if e["type"] == event_type), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        event = found()
        assert event is not None
        return event


@contextlib.asynccontextmanager
async def caller_app(http_port: int, password: str):  # type: ignore[no-untyped-def]
    ari = AriClient(f"http://127.0.0.1:{http_port}", "ctl", password, "ctl-caller")
    caller = Caller(ari)
    caller.stream.start()
    await asyncio.wait_for(caller.stream.connected.wait(), 10)
    try:
        yield caller
    finally:
        await caller.stream.stop()
        await ari.close()
