"""Integration fixtures: one real Asterisk per test session, ctl per backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser
from sqlalchemy.engine import make_url

from ctl.asterisk.process import AsteriskProcess
from ctl.asterisk.service import AsteriskService
from ctl.settings import Settings, load_settings
from ctl.store.db import Database, migrate
from tests.integration import sip, stun
from tests.integration.agent_api import Panel
from tests.integration.desk_browser import chromium
from tests.integration.harness import Caller, CtlProcess, caller_app, free_port, slot

PG_ADMIN = os.environ.get("CTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("CTL_TEST_REDIS", "redis://127.0.0.1:6379")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for one test (a module may override it with a wider scope)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium shared by one module's pages (each test opens its own)."""
    async with chromium() as b:
        yield b


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ctl")


@pytest.fixture(scope="session")
def ast_env(data_dir: Path) -> dict[str, str]:
    # RTP ranges of the suite's Asterisks stay below Linux's ephemeral ports (32768-):
    # every client socket of the suite (phones' RTP, Chromium's WebRTC, sipp, the
    # other worker's) draws from those, and could take a port an Asterisk just freed
    # while a peer still sends to it.
    rtp = 10000 + slot(100) * 100
    return {
        "CTL_DATA_DIR": str(data_dir),
        "CTL_ASTERISK__SIP_PORT": str(free_port(socket.SOCK_DGRAM)),
        "CTL_ASTERISK__HTTP_PORT": str(free_port()),
        "CTL_ASTERISK__AMI_PORT": str(free_port()),
        "CTL_ASTERISK__RTP_START": str(rtp),
        "CTL_ASTERISK__RTP_END": str(rtp + 99),
        "CTL_LOG_FORMAT": "json",
        "CTL_LOG_LEVEL": "INFO",
        # Queue "general" (extension 1100): short offers and frequent announcements, so
        # the voice queue tests see both within seconds.
        # Callbacks dial extensions of [public]: 1999 answers (and hangs up after its
        # prompt), 1998 does not exist.
        # Queue "tiny" (1101) gives up after 2 s; "later" (1102) then calls back instead.
        # Queue "desk" (the desk's headline call, through flow desk-call at 1212) has
        # wrap-up after each call.
        "CTL_ROUTING": json.dumps({"queues": [{"name": "general", "offer_timeout": 4},
                                              {"name": "tiny", "max_wait": 2,
                                               "overflow": {"kind": "voicemail"}},
                                              {"name": "later", "max_wait": 2,
                                               "overflow": {"kind": "callback"}},
                                              {"name": "desk", "wrapup_seconds": 300}],
                                   "announce_every": 2, "sticky_wait": 0,
                                   "callback_dial": "Local/{number}@public",
                                   "callback_retries": 1, "callback_retry_after": 1,
                                   "callback_ring": 5}),
        # The demo flows' numbers, and the IVR tests' own flows.
        "CTL_IVR": json.dumps({"numbers": {"1200": "main", "1201": "order-status",
                                           "1202": "after-hours", "1210": "reload-test",
                                           "1211": "transfer-test",
                                           "1212": "desk-call"}}),
    }


@pytest.fixture(scope="session")
def settings(ast_env: dict[str, str], monkeypatch_session: pytest.MonkeyPatch) -> Settings:
    for k, v in ast_env.items():
        monkeypatch_session.setenv(k, v)
    return load_settings()


@pytest.fixture(scope="session")
def monkeypatch_session() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="session")
async def asterisk(settings: Settings) -> AsyncIterator[AsteriskProcess]:
    """The project's own Asterisk. Missing Asterisk is an error, never a skip."""
    proc = await AsteriskService(settings).up()
    yield proc
    proc.stop()


@pytest.fixture(scope="session", params=["sqlite", "pg"])
async def backend(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"CTL_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir}/ctl-{uuid.uuid4().hex}.db"}
        return
    name = f"ctl_it_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db_index = 1 + slot(14)
    url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=name)
    yield {
        "CTL_DATABASE_URL": url.render_as_string(hide_password=False),
        "CTL_REDIS_URL": f"{REDIS}/{db_index}",
    }
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


# The storage layer alone: one migrated database per module, on each backend.
@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async with empty_database(request.param, tmp_path_factory) as url:
        yield url


@contextlib.asynccontextmanager
async def empty_database(kind: str, tmp: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A new, empty database of `kind` ("sqlite" or "postgresql"), dropped after."""
    if kind == "sqlite":
        # A missing parent directory: migrate() and Database() must create it.
        yield f"sqlite+aiosqlite:///{tmp.mktemp('store')}/not/yet/ctl.db"
        return
    name = f"ctl_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="module")
async def store(store_url: str) -> AsyncIterator[Database]:
    await asyncio.to_thread(migrate, store_url)
    db = Database(store_url)
    yield db
    await db.close()


@pytest.fixture(scope="session")
def ice(data_dir: Path) -> Iterator[tuple[stun.StunTurn, list[dict[str, Any]]]]:
    """The STUN/TURN server (coturn) the shared controller hands browsers, and those
    settings. It relays from 32720-32767: above the suite's Asterisks' RTP ports, below
    the ephemeral ones (see ast_env)."""
    port = free_port(socket.SOCK_DGRAM)
    with stun.serve(uuid.uuid4().hex, port, range(32720, 32768),
                    data_dir / "turnserver.log") as server:
        yield server, [{"urls": [f"stun:127.0.0.1:{port}"]},
                       {"urls": [f"turn:127.0.0.1:{port}?transport=udp"],
                        "secret": server.secret, "ttl": 3600}]


@pytest.fixture(scope="session")
async def ctl(asterisk: AsteriskProcess, backend: dict[str, str], ast_env: dict[str, str],
              data_dir: Path, ice: tuple[stun.StunTurn, list[dict[str, Any]]]
              ) -> AsyncIterator[CtlProcess]:
    env = {**ast_env, **backend, "CTL_HTTP_PORT": str(free_port()),
           # WeChat's callback on (the cross-channel test); the token is this session's.
           "CTL_CHANNELS__WECHAT__TOKEN": uuid.uuid4().hex,
           "CTL_ASTERISK__ICE_SERVERS": json.dumps(ice[1])}
    proc = CtlProcess(env, data_dir / f"ctl-{env['CTL_HTTP_PORT']}.log")
    await proc.start()
    yield proc
    proc.stop()


_JANITORS: dict[int, tuple[str, str]] = {}  # per shared controller: a supervisor's login


@pytest.fixture(autouse=True)
async def agents_leave(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every agent a test left available on the shared controller goes offline after it, so
    no later test's caller is offered to a phone that is gone (whatever the test did)."""
    yield
    if "ctl" not in request.fixturenames:
        return
    ctl: CtlProcess = request.getfixturevalue("ctl")  # set up already: the cached one
    env = {**os.environ, **request.getfixturevalue("ast_env"),
           **request.getfixturevalue("backend")}
    if ctl.port not in _JANITORS:
        username = f"janitor{uuid.uuid4().hex[:8]}"
        password = await sip.add_agent(env, username, "Janitor",
                                       str(9000000 + uuid.uuid4().int % 1000000))
        await sip.ctl_command(env, "agents", "set", username, "--role", "supervisor")
        _JANITORS[ctl.port] = (username, password)
    async with aiohttp.ClientSession() as session:
        janitor = await Panel(f"http://127.0.0.1:{ctl.port}", session).login(
            *_JANITORS[ctl.port])
        for agent in (await janitor.call("GET", "/api/v1/agents"))["agents"]:
            if agent.get("status") != "offline":
                await janitor.call("PUT", f"/api/v1/agents/{agent['id']}/state",
                                   {"state": "offline"})


@pytest.fixture(scope="session")
async def db(backend: dict[str, str]) -> AsyncIterator[Database]:
    database = Database(backend["CTL_DATABASE_URL"])
    yield database
    await database.close()


@pytest.fixture(scope="session")
async def caller(asterisk: AsteriskProcess) -> AsyncIterator[Caller]:
    async with caller_app(asterisk.cfg.http_port, asterisk.secrets.ari_password) as c:
        yield c


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[Any]) -> None:
    # Keep tests of one backend together so each session fixture starts once; under xdist
    # (tests.run: --dist loadgroup) one worker takes all of a backend's tests, and a
    # module without a backend goes whole to one worker (its module fixtures start once).
    def key(item: Any) -> str:
        spec = getattr(item, "callspec", None)
        return str(spec.params.get("backend", "")) if spec else ""

    items.sort(key=key)
    for item in items:
        item.add_marker(pytest.mark.xdist_group(key(item) or item.module.__name__))
