"""ctl's application in this test process, for the digital channels' tests.

Channels need no Asterisk: the app runs in the test's loop (its ARI and AMI clients
retry in the background), so a test reaches its services and can add adapters.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy.engine import make_url

from ctl.agents.service import RoutingChanges
from ctl.app import create_app
from ctl.services import SERVICES, Services
from ctl.settings import Settings, load_settings
from ctl.store.live import RedisLive
from tests.integration.agent_api import Panel
from tests.integration.conftest import PG_ADMIN, REDIS
from tests.integration.harness import free_port


@dataclass
class App:
    services: Services
    base: str
    settings: Settings


def isolated_settings(**values: Any) -> Settings:
    """Settings from `values` alone: CTL_* variables left by other tests would win."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CTL_")}
    try:
        return load_settings(**values)
    finally:
        os.environ.update(saved)


@contextlib.asynccontextmanager
async def database(kind: str, data_dir: Path) -> AsyncIterator[str]:
    """A fresh database URL on SQLite or PostgreSQL, dropped afterwards."""
    tag = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{data_dir}/chan-{tag}.db"
        return
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "chan_{tag}"')
    try:
        url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=f"chan_{tag}")
        yield url.render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "chan_{tag}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[App]:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield App(app[SERVICES], f"http://127.0.0.1:{port}", settings)
    finally:
        await runner.cleanup()


def channel_settings(data_dir: Path, db_url: str, **channels: Any) -> Settings:
    return isolated_settings(
        data_dir=data_dir, database_url=db_url, node_id=f"chan-{uuid.uuid4().hex[:6]}",
        asterisk={"http_port": free_port(), "ami_port": free_port()},
        routing={"queues": [{"name": "general", "offer_timeout": 30},
                            {"name": "mail", "offer_timeout": 30}], "sticky_wait": 0},
        channels=channels)


async def add_agent(services: Services, username: str, role: str = "agent",
                    queues: tuple[str, ...] = ("general", "mail")) -> str:
    """An agent who takes chats, emails and API contacts; returns the password."""
    ext = str(4000000 + uuid.uuid4().int % 1000000)
    _, password = await services.agents.create(username, username.title(), ext)
    await services.agents.configure(username, RoutingChanges(
        role=role, capacity={"chat": 3, "email": 3, "api": 3, "sms": 3},
        profile=[{"queue": q, "priority": 1, "delay": 0} for q in queues]))
    return password


async def login(app: App, http: aiohttp.ClientSession, role: str = "agent",
                queues: tuple[str, ...] = ("general", "mail")) -> Panel:
    """A new agent of `queues`, logged in to the agent API."""
    user = f"a{uuid.uuid4().hex[:8]}"
    return await Panel(app.base, http).login(user, await add_agent(app.services, user, role,
                                                                    queues))


async def platform_agent(app: App, http: aiohttp.ClientSession, channel: str) -> Panel:
    """An available agent of the general queue with capacity for `channel`, listening."""
    user = f"{channel[:2]}{uuid.uuid4().hex[:8]}"
    _, password = await app.services.agents.create(user, user.title(),
                                                   str(5000000 + uuid.uuid4().int % 1000000))
    await app.services.agents.configure(user, RoutingChanges(
        role="agent", capacity={channel: 2},
        profile=[{"queue": "general", "priority": 1, "delay": 0}]))
    agent = await Panel(app.base, http).login(user, password)
    await agent.listen()
    await agent.state("available")
    return agent


@contextlib.asynccontextmanager
async def fake_platform(app: web.Application) -> AsyncIterator[str]:
    """A platform's fake API (aiohttp `app`) on a free loopback port: its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def platform_app(data_dir: Path, **channels: Any) -> AsyncIterator[App]:
    """ctl on SQLite with `channels`; no rate limit in the way of many webhooks from one
    sender (hypothesis)."""
    async with database("sqlite", data_dir) as url, \
            running(channel_settings(data_dir, url, rate_burst=10_000,
                                     rate_per_minute=600_000, **channels)) as a:
        yield a


@contextlib.asynccontextmanager
async def shared_lives(n: int) -> AsyncIterator[list[RedisLive]]:
    """`n` controllers' live states on one fresh Redis prefix, removed afterwards."""
    prefix = f"ctltest:{uuid.uuid4().hex[:12]}:"
    lives = [RedisLive(REDIS, prefix=prefix, max_connections=2) for _ in range(n)]
    try:
        yield lives
    finally:
        for live in lives:
            await live.close()
        raw = aioredis.from_url(REDIS)
        await raw.delete(f"{prefix}values")
        await raw.aclose()
