"""The system under test: the project's Asterisk and a real `ctl serve`, on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from ctl.asterisk.process import AsteriskProcess
from ctl.asterisk.service import AsteriskService
from ctl.settings import load_settings
from ctl.telephony.ari import AriClient
from tests.integration.harness import CtlProcess, free_port

PG_ADMIN = os.environ.get("CTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("CTL_BENCH_REDIS", "redis://127.0.0.1:6379/15")
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    data_dir: Path
    asterisk: AsteriskProcess
    ctl: CtlProcess
    ari: AriClient

    @property
    def sip(self) -> tuple[str, int]:
        return self.asterisk.cfg.sip_host, self.asterisk.cfg.sip_port

    def cpu(self) -> tuple[float, float]:
        """CPU seconds (user+system, all threads) used so far by Asterisk and by ctl."""
        assert self.asterisk.proc is not None and self.ctl.proc is not None
        return tree_cpu(self.asterisk.proc.pid), tree_cpu(self.ctl.proc.pid)

    async def channels(self) -> int:
        return len(await self.ari.channels())

    async def settle(self, timeout: float = 60.0) -> None:
        """Wait until no channel is left and both processes are idle.

        ctl still writes the contact's close after the BYE, so a phase's CPU is read only
        once that work is done too.
        """
        deadline = time.monotonic() + timeout
        last: float | None = None
        while time.monotonic() < deadline:
            busy = await self.channels()
            now = sum(self.cpu())
            # Under 2% of one core over 0.3 s: only idle housekeeping is left.
            if not busy and last is not None and now - last < 0.006:
                return
            last = now
            await asyncio.sleep(0.3)

    async def ended_reasons(self) -> dict[str, float]:
        """ctl's `ctl_calls_ended_total` by reason, from /metrics."""
        url = f"http://127.0.0.1:{self.ctl.port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            text = await r.text()
        reasons: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("ctl_calls_ended_total{"):
                label, value = line.rsplit(" ", 1)
                reasons[label.split('reason="', 1)[1].split('"', 1)[0]] = float(value)
        return reasons


def tree_cpu(pid: int) -> float:
    """utime+stime of `pid` and its live descendants, in seconds (0 for a gone process)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        # Fields after the ")" that closes the command name: utime and stime are 14, 15.
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _TICK
        todo += [int(c) for c in children]
    return total


def environment(data_dir: Path, concurrency: int) -> dict[str, str]:
    # Asterisk takes an even RTP port and its RTCP neighbour per call; a margin covers
    # calls still tearing down while the next ones start.
    span = 4 * concurrency + 200
    rtp = random.randrange(20000, 30000 - span, 2)
    return {
        "CTL_DATA_DIR": str(data_dir),
        "CTL_ASTERISK__SIP_PORT": str(free_port(socket.SOCK_DGRAM)),
        "CTL_ASTERISK__HTTP_PORT": str(free_port()),
        "CTL_ASTERISK__AMI_PORT": str(free_port()),
        "CTL_ASTERISK__RTP_START": str(rtp),
        "CTL_ASTERISK__RTP_END": str(rtp + span),
        "CTL_LOG_FORMAT": "json",
        "CTL_LOG_LEVEL": "INFO",
    }


@contextlib.asynccontextmanager
async def postgres() -> AsyncIterator[dict[str, str]]:
    """A throwaway PostgreSQL database and a Redis db for ctl, dropped at the end."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    name = f"ctl_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=name)
        yield {"CTL_DATABASE_URL": url.render_as_string(hide_password=False),
               "CTL_REDIS_URL": REDIS}
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def running(data_dir: Path, concurrency: int, pg: bool,
                  extra: dict[str, str] | None = None) -> AsyncIterator[Stack]:
    """Asterisk and ctl up for the block; both are stopped on any exit, Ctrl-C included.
    `extra`: more CTL_* settings for both (e.g. the benchmark's IVR numbers)."""
    env = environment(data_dir, concurrency) | (extra or {})
    os.environ.update(env)  # load_settings reads CTL_* from the environment
    async with contextlib.AsyncExitStack() as stack:
        if pg:
            env |= await stack.enter_async_context(postgres())
        else:
            env["CTL_DATABASE_URL"] = f"sqlite+aiosqlite:///{data_dir}/ctl.db"
        settings = load_settings()
        asterisk = await AsteriskService(settings).up()
        stack.callback(asterisk.stop)
        env["CTL_HTTP_PORT"] = str(free_port())
        ctl = CtlProcess(env, data_dir / f"ctl-{env['CTL_HTTP_PORT']}.log")
        stack.callback(ctl.stop)
        await ctl.start()
        ari = AriClient(f"http://127.0.0.1:{settings.asterisk.http_port}", "ctl",
                        asterisk.secrets.ari_password, "ctl-bench")
        stack.push_async_callback(ari.close)
        yield Stack(data_dir, asterisk, ctl, ari)
