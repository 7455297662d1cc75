"""Two controllers sharing PostgreSQL and Redis: one leads, the other serves and forwards;
the leader is killed mid-stream and routing goes on with no contact decided twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.engine import make_url

from ctl.asterisk.process import AsteriskProcess
from ctl.store.db import Database
from ctl.store.models import Contact, ContactEvent
from tests.integration import sip
from tests.integration.agent_api import Panel
from tests.integration.conftest import PG_ADMIN, REDIS
from tests.integration.harness import CtlProcess, eventually, free_port, slot

ROUTING = {"queues": [{"name": "sales", "offer_timeout": 10}], "sticky_wait": 0}
CONTACTS = 24


@pytest.fixture(scope="module")
async def env(asterisk: AsteriskProcess, ast_env: dict[str, str]
              ) -> AsyncIterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:10]
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "cluster_{tag}"')
    url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=f"cluster_{tag}")
    redis_db = 1 + slot(14, offset=1)  # not the session controller's
    r = aioredis.Redis.from_url(f"{REDIS}/{redis_db}")
    await r.flushdb()
    await r.aclose()
    yield {**{k: v for k, v in os.environ.items() if not k.startswith("CTL_")}, **ast_env,
           "CTL_ASTERISK__APP": f"clu{tag}", "CTL_ROUTING": json.dumps(ROUTING),
           "CTL_DATABASE_URL": url.render_as_string(hide_password=False),
           "CTL_REDIS_URL": f"{REDIS}/{redis_db}"}
    await admin.execute(f'DROP DATABASE IF EXISTS "cluster_{tag}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="module")
async def nodes(env: dict[str, str], data_dir: Path) -> AsyncIterator[list[CtlProcess]]:
    procs = []
    for name in ("a", "b"):
        port = str(free_port())
        mine = {**env, "CTL_HTTP_PORT": port, "CTL_NODE_ID": f"node-{name}"}
        proc = CtlProcess(mine, data_dir / f"cluster-{name}-{port}.log")
        proc.env = mine
        await proc.start(wait_ari=name == "a")
        procs.append(proc)
    yield procs
    for proc in procs:
        proc.stop()


async def role(node: CtlProcess) -> str | None:
    health = await node.health(need_ari=False)
    return None if health is None else str(health["checks"]["routing"]["role"])


async def test_leader_killed_routing_goes_on_without_double_decisions(
        env: dict[str, str], nodes: list[CtlProcess], data_dir: Path) -> None:
    a, b = nodes
    assert (await role(a), await role(b)) == ("leader", "follower")
    tag = uuid.uuid4().hex[:6]
    users = {}
    for name, role_name in (("ann", "agent"), ("ben", "agent"), ("sue", "supervisor")):
        user = f"{name}{tag}"
        users[name] = (user, await sip.add_agent(
            sip.on_shared_asterisk(env), user, name.title(),
            str(5000000 + uuid.uuid4().int % 999999)))
        await sip.ctl_command(env, "agents", "set", user, "--role", role_name, "--queue",
                              "sales", "--capacity", "chat=2")
    async with aiohttp.ClientSession() as http:
        # Everyone talks to the follower: it forwards to whoever leads.
        panels = {n: await Panel(f"http://127.0.0.1:{b.port}", http).login(*users[n])
                  for n in users}
        for n in ("ann", "ben"):
            await panels[n].listen()
            await panels[n].state("available")
        workers = [asyncio.create_task(work(panels[n])) for n in ("ann", "ben")]
        sue = panels["sue"]
        ids = []
        for i in range(CONTACTS):
            if i == CONTACTS // 2:
                a.kill()  # the leader dies with offers out and commands in flight
            body = await sue.call("POST", "/api/v1/contacts",
                                  {"channel": "chat", "queue": "sales"}, expect=201)
            ids.append(body["id"])
        assert await role(b) == "leader"
        db = Database(env["CTL_DATABASE_URL"])
        try:
            await eventually(lambda: all_closed(db, ids), 90, "every contact handled")
            async with db.session(readonly=True) as s:
                rows = list(await s.scalars(select(ContactEvent).where(
                    ContactEvent.contact_id.in_(ids), ContactEvent.kind == "state")
                    .order_by(ContactEvent.id)))
        finally:
            await db.close()
            for w in workers:
                w.cancel()
            for p in panels.values():
                await p.close()
    for contact in ids:
        states = [e.to_state for e in rows if e.contact_id == contact]
        assert states.count("assigned") == 1, (contact, states)
        # Never offered while already offered: one decision at a time, whoever led.
        assert "offered,offered" not in ",".join(states), (contact, states)


async def all_closed(db: Database, ids: list[str]) -> bool:
    async with db.session(readonly=True) as s:
        states = list(await s.scalars(select(Contact.state).where(Contact.id.in_(ids))))
    return len(states) == len(ids) and all(state == "closed" for state in states)


async def work(panel: Panel) -> None:
    """An agent who takes every offer and finishes at once (refusals after the failover,
    for offers the dead leader made, are expected)."""
    while True:
        msg = await panel.next("offer", timeout=120)
        offer = msg["offer"]
        with contextlib.suppress(AssertionError):
            await panel.call("POST", f"/api/v1/offers/{offer['id']}/accept")
            await panel.call("POST", f"/api/v1/contacts/{offer['contact_id']}/complete")
