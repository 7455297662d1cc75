"""The controller's HTTP API and services on a real database and routing engine, without
Asterisk (tickets never touch telephony): an aiohttp server on a free port."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ctl.agents.service import RoutingChanges
from ctl.asterisk.secrets import load_or_create
from ctl.routing import http as routing_http
from ctl.services import SERVICES, Services
from ctl.settings import load_settings
from ctl.store.db import Database, migrate
from ctl.tickets import http as tickets_http
from ctl.web import errors, openapi
from tests.integration.agent_api import Panel

DEPARTMENTS = ("service", "tech", "billing")


@dataclass
class App:
    services: Services
    base: str
    http: aiohttp.ClientSession
    users: dict[str, str]  # alice -> her username
    passwords: dict[str, str]  # alice -> her password

    async def panel(self, name: str) -> Panel:
        return await Panel(self.base, self.http).login(self.users[name], self.passwords[name])


async def start_app(db: Database, data_dir: Path, **settings: Any) -> AsyncIterator[App]:
    """Services on `db`'s database with queues for DEPARTMENTS; agents alice (tech),
    bob (billing), sue (supervisor of everything)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CTL_")}
    try:
        cfg = load_settings(data_dir=data_dir, database_url=db.url, routing={
            "queues": [{"name": d} for d in DEPARTMENTS], "sticky_wait": 0}, **settings)
    finally:
        os.environ.update(saved)
    await asyncio.to_thread(migrate, cfg.db_url)
    services = Services(cfg, load_or_create(data_dir))
    await services.core.start()
    users, passwords = {}, {}
    for n, (name, queues, role) in enumerate([("alice", ["tech"], "agent"),
                                              ("bob", ["billing"], "agent"),
                                              ("sue", list(DEPARTMENTS), "supervisor")]):
        users[name] = f"{name}-{os.urandom(3).hex()}"
        _, passwords[name] = await services.agents.create(users[name], name, str(4000 + n))
        await services.agents.configure(users[name], RoutingChanges(
            profile=[{"queue": q} for q in queues], capacity={"task": 5}, role=role))
    app = web.Application(middlewares=[errors.errors])
    app.add_routes(routing_http.routes)
    app.add_routes(tickets_http.routes)
    app.add_routes(openapi.routes)
    app[SERVICES] = services
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        app_ = App(services, f"http://127.0.0.1:{server.port}", http, users, passwords)
        try:
            yield app_
        finally:
            await server.close()
            await services.core.stop()
            await services.db.close()


@pytest.fixture(scope="module")
async def tickets_app(ticket_db: Database, tmp_path_factory: pytest.TempPathFactory
                      ) -> AsyncIterator[App]:
    async for app in start_app(ticket_db, tmp_path_factory.mktemp("app")):
        yield app
