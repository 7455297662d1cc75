"""Routing through the agent API of a real `ctl serve`, on SQLite and on PostgreSQL + Redis.

This controller has a database of its own and its own ARI application: its routing engine
must be the only one deciding for its contacts.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from ctl.asterisk.process import AsteriskProcess
from ctl.store.db import Database
from ctl.store.models import Contact, ContactEvent, Customer
from tests.integration import sip
from tests.integration.agent_api import Panel
from tests.integration.conftest import PG_ADMIN
from tests.integration.harness import CtlProcess, free_port

ROUTING = {
    "queues": [{"name": "sales", "wrapup_seconds": 1, "offer_timeout": 30},
               {"name": "support", "offer_timeout": 2}],
    "sticky_wait": 5,
}


@pytest.fixture(scope="module", params=["sqlite", "pg"])
async def env(request: pytest.FixtureRequest, asterisk: AsteriskProcess,
              ast_env: dict[str, str], data_dir: Path) -> AsyncIterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:10]
    base = {**{k: v for k, v in os.environ.items() if not k.startswith("CTL_")}, **ast_env,
            "CTL_HTTP_PORT": str(free_port()), "CTL_ASTERISK__APP": f"route{tag}",
            "CTL_ROUTING": json.dumps(ROUTING)}
    if request.param == "sqlite":
        yield {**base, "CTL_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir}/route-{tag}.db"}
        return
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "route_{tag}"')
    url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=f"route_{tag}")
    yield {**base, "CTL_DATABASE_URL": url.render_as_string(hide_password=False)}
    await admin.execute(f'DROP DATABASE IF EXISTS "route_{tag}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="module")
async def ctl_routing(env: dict[str, str], data_dir: Path) -> AsyncIterator[CtlProcess]:
    proc = CtlProcess(env, data_dir / f"route-{env['CTL_HTTP_PORT']}.log")
    proc.env = env
    await proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def rdb(env: dict[str, str], ctl_routing: CtlProcess) -> AsyncIterator[Database]:
    db = Database(env["CTL_DATABASE_URL"])
    yield db
    await db.close()


@pytest.fixture(scope="module")
async def people(env: dict[str, str], ctl_routing: CtlProcess) -> dict[str, str]:
    """alice (sales, support), bob (support), sup (supervisor): username -> password."""
    tag = uuid.uuid4().hex[:6]
    out = {}
    for name, queues, role in (("alice", ["sales", "support"], "agent"),
                               ("bob", ["support"], "agent"), ("sup", [], "supervisor")):
        user = f"{name}{tag}"
        ext = str(3000000 + uuid.uuid4().int % 1000000)
        out[name] = user
        out[f"{name}:pw"] = await sip.add_agent(sip.on_shared_asterisk(env), user,
                                                name.title(), ext)
        args = ["agents", "set", user, "--role", role, "--capacity", "chat=3",
                "--skill", "en=3"]
        for q in queues:
            args += ["--queue", q]
        await sip.ctl_command(env, *args)
    return out



async def panel(ctl: CtlProcess, http: aiohttp.ClientSession, people: dict[str, str],
                who: str) -> Panel:
    p = Panel(f"http://127.0.0.1:{ctl.port}", http)
    return await p.login(people[who], people[f"{who}:pw"])


async def new_contact(sup: Panel, queue: str, priority: int = 0,
                      customer: str | None = None) -> str:
    body = await sup.call("POST", "/api/v1/contacts", {
        "channel": "chat", "queue": queue, "priority": priority,
        "customer": {"kind": "email", "value": customer} if customer else None}, expect=201)
    return str(body["id"])


async def history(db: Database, contact_id: str) -> list[tuple[str | None, str | None]]:
    async with db.session(readonly=True) as s:
        rows = await s.scalars(select(ContactEvent).where(ContactEvent.contact_id == contact_id)
                               .where(ContactEvent.kind == "state").order_by(ContactEvent.id))
        return [(e.to_state, e.reason) for e in rows]


async def test_login_and_roles(ctl_routing: CtlProcess, http: aiohttp.ClientSession,
                               people: dict[str, str]) -> None:
    anon = Panel(f"http://127.0.0.1:{ctl_routing.port}", http)
    body = await anon.call("POST", "/api/v1/login",
                           {"username": people["alice"], "password": "wrong"}, expect=401)
    assert body["error"] == "unauthorized"
    await anon.call("GET", "/api/v1/me", expect=401)
    alice = await panel(ctl_routing, http, people, "alice")
    await alice.call("GET", "/api/v1/queues", expect=403)  # supervisors only
    me = await alice.call("GET", "/api/v1/me")
    assert me["status"] == "offline" and me["capacity"]["chat"] == 3
    bad = await alice.call("PUT", "/api/v1/me/state", {"state": "sleeping"}, expect=409)
    assert "sleeping" in bad["message"]
    await alice.state("available")
    await alice.call("POST", "/api/v1/logout")
    await alice.call("GET", "/api/v1/me", expect=401)  # the token is dead...
    again = await panel(ctl_routing, http, people, "alice")
    assert (await again.call("GET", "/api/v1/me"))["status"] == "offline"  # ...and she is


async def test_offer_accept_wrapup_close(ctl_routing: CtlProcess, http: aiohttp.ClientSession,
                                         people: dict[str, str], rdb: Database) -> None:
    alice = await panel(ctl_routing, http, people, "alice")
    sup = await panel(ctl_routing, http, people, "sup")
    await alice.listen()
    await alice.state("available")
    contact = await new_contact(sup, "sales")
    offer = (await alice.next("offer", offer__contact_id=contact))["offer"]
    assert offer["channel"] == "chat" and offer["queue"] == "sales"
    await alice.call("POST", f"/api/v1/offers/{offer['id']}/accept")
    await alice.next("Assigned", contact_id=contact)
    me = await alice.call("GET", "/api/v1/me")
    assert [c["id"] for c in me["contacts"]] == [contact]
    await alice.call("POST", f"/api/v1/contacts/{contact}/complete")
    await alice.next("WrapupStarted", contact_id=contact)
    assert (await alice.call("GET", "/api/v1/me"))["status"] == "wrapup"
    await alice.next("Released", contact_id=contact)  # sales' wrap-up is 1 s
    assert [s for s, _ in await history(rdb, contact)] == [
        "new", "queued", "offered", "assigned", "wrapup", "closed"]
    async with rdb.session(readonly=True) as s:
        row = await s.get(Contact, contact)
        assert row is not None and row.agent_id == alice.agent_id
    await alice.state("offline")
    await alice.close()


async def test_unanswered_offer_goes_to_the_next_agent(
        ctl_routing: CtlProcess, http: aiohttp.ClientSession, people: dict[str, str],
        rdb: Database) -> None:
    alice = await panel(ctl_routing, http, people, "alice")
    bob = await panel(ctl_routing, http, people, "bob")
    sup = await panel(ctl_routing, http, people, "sup")
    for p in (alice, bob):
        await p.listen()
        await p.state("available")
    contact = await new_contact(sup, "support")
    first = await first_offered(contact, alice, bob)
    other = bob if first is alice else alice
    ended = await first.next("OfferEnded", contact_id=contact)  # support's timeout: 2 s
    assert ended["reason"] == "timeout"
    second = (await other.next("offer", offer__contact_id=contact))["offer"]
    await other.call("POST", f"/api/v1/offers/{second['id']}/accept")
    states = [s for s, _ in await history(rdb, contact)]
    assert states == ["new", "queued", "offered", "queued", "offered", "assigned"]
    await other.call("POST", f"/api/v1/contacts/{contact}/complete")
    for p in (alice, bob):
        await p.state("offline")
        await p.close()


async def first_offered(contact: str, *panels: Panel) -> Panel:
    """The agent the contact was offered to first (longest idle: either, by timing)."""
    tasks = {asyncio.create_task(p.next("offer", offer__contact_id=contact)): p
             for p in panels}
    done, pending = await asyncio.wait(tasks, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    assert done, f"{contact} was offered to nobody"
    return tasks[done.pop()]


async def test_abandoned_while_waiting_keeps_its_wait(
        ctl_routing: CtlProcess, http: aiohttp.ClientSession, people: dict[str, str],
        rdb: Database) -> None:
    sup = await panel(ctl_routing, http, people, "sup")
    contact = await new_contact(sup, "sales")  # nobody is available in sales
    queues = {q["name"]: q for q in (await sup.call("GET", "/api/v1/queues"))["queues"]}
    assert queues["sales"]["waiting"] >= 1
    await sup.call("POST", f"/api/v1/contacts/{contact}/abandon")
    async with rdb.session(readonly=True) as s:
        row = await s.get(Contact, contact)
        assert row is not None and row.state == "abandoned"
        last = (await s.scalars(select(ContactEvent).where(ContactEvent.contact_id == contact)
                                .order_by(ContactEvent.id.desc()))).first()
    assert last is not None and last.reason == "customer_left"
    assert last.data["waited"] > 0


async def test_queue_order_and_agent_state_survive_a_crash(
        ctl_routing: CtlProcess, http: aiohttp.ClientSession, people: dict[str, str],
        rdb: Database) -> None:
    alice = await panel(ctl_routing, http, people, "alice")
    sup = await panel(ctl_routing, http, people, "sup")
    await alice.state("away", "lunch")
    first = await new_contact(sup, "sales")
    vip = await new_contact(sup, "sales", priority=5)
    last = await new_contact(sup, "sales")

    ctl_routing.kill()  # SIGKILL: nothing is flushed on the way out
    await ctl_routing.start()

    me = await alice.call("GET", "/api/v1/me")  # the session survived too
    assert (me["status"], me["reason"]) == ("away", "lunch")
    await alice.listen()
    await alice.state("available")
    got = [(await alice.next("offer"))["offer"]["contact_id"] for _ in range(3)]
    assert got == [vip, first, last]
    for contact in got:
        offer = next(o for o in (await alice.call("GET", "/api/v1/me"))["offers"]
                     if o["contact_id"] == contact)
        await alice.call("POST", f"/api/v1/offers/{offer['id']}/decline")
    await alice.state("offline")
    await alice.close()
    for contact in got:
        await sup.call("POST", f"/api/v1/contacts/{contact}/abandon")


async def test_transfer_to_an_agent_then_to_a_queue(
        ctl_routing: CtlProcess, http: aiohttp.ClientSession, people: dict[str, str],
        rdb: Database) -> None:
    alice = await panel(ctl_routing, http, people, "alice")
    bob = await panel(ctl_routing, http, people, "bob")
    sup = await panel(ctl_routing, http, people, "sup")
    await alice.listen()
    await bob.listen()
    await alice.state("available")
    contact = await new_contact(sup, "sales")  # bob is not in sales: only alice gets it
    offer = (await alice.next("offer", offer__contact_id=contact))["offer"]
    await alice.call("POST", f"/api/v1/offers/{offer['id']}/accept")
    await bob.state("available")
    # To bob by name, although sales is not in his profile.
    await alice.call("POST", f"/api/v1/contacts/{contact}/transfer", {"agent": people["bob"]})
    offer = (await bob.next("offer", offer__contact_id=contact))["offer"]
    await bob.call("POST", f"/api/v1/offers/{offer['id']}/accept")
    # Bob sends it back to the sales queue, where alice is the one who takes it.
    await bob.call("POST", f"/api/v1/contacts/{contact}/transfer", {"queue": "sales"})
    offer = (await alice.next("offer", offer__contact_id=contact))["offer"]
    await alice.call("POST", f"/api/v1/offers/{offer['id']}/accept")
    refused = await bob.call("POST", f"/api/v1/contacts/{contact}/complete", expect=403)
    assert refused["error"] == "forbidden"  # no longer his
    await alice.call("POST", f"/api/v1/contacts/{contact}/complete")
    await alice.next("Released", contact_id=contact)
    assert [s for s, _ in await history(rdb, contact)] == [
        "new", "queued", "offered", "assigned", "queued", "offered", "assigned", "queued",
        "offered", "assigned", "wrapup", "closed"]
    for p in (alice, bob):
        await p.state("offline")
        await p.close()


async def test_vip_first_and_returning_customer_to_their_last_agent(
        ctl_routing: CtlProcess, http: aiohttp.ClientSession, people: dict[str, str],
        rdb: Database) -> None:
    alice = await panel(ctl_routing, http, people, "alice")
    bob = await panel(ctl_routing, http, people, "bob")
    sup = await panel(ctl_routing, http, people, "sup")
    await alice.listen()
    await bob.listen()
    vip = f"vip-{uuid.uuid4().hex[:6]}@example.com"
    seed = await new_contact(sup, "support", customer=vip)  # makes the customer
    await sup.call("POST", f"/api/v1/contacts/{seed}/abandon")
    async with rdb.session() as s, s.begin():
        row = await s.get(Contact, seed)
        assert row is not None and row.customer_id is not None
        customer = await s.get(Customer, row.customer_id)
        assert customer is not None
        customer.tier = "vip"

    plain = await new_contact(sup, "sales")
    first_vip = await new_contact(sup, "sales", customer=vip)
    await alice.state("available")  # the VIP, enqueued later, comes first
    got = (await alice.next("offer"))["offer"]
    assert got["contact_id"] == first_vip
    await alice.call("POST", f"/api/v1/offers/{got['id']}/accept")
    await alice.call("POST", f"/api/v1/contacts/{first_vip}/complete")
    await alice.call("POST", f"/api/v1/contacts/{first_vip}/wrapup-done")
    second = (await alice.next("offer", offer__contact_id=plain))["offer"]
    await alice.call("POST", f"/api/v1/offers/{second['id']}/decline")
    await alice.state("offline")
    await sup.call("POST", f"/api/v1/contacts/{plain}/abandon")

    # Bob served the VIP in support; next time they come back to him, though alice has
    # been idle longer.
    await bob.state("available")
    one = await new_contact(sup, "support", customer=vip)
    got = (await bob.next("offer", offer__contact_id=one))["offer"]
    await bob.call("POST", f"/api/v1/offers/{got['id']}/accept")
    await alice.state("available")  # idle from now: longer than bob will be
    await bob.call("POST", f"/api/v1/contacts/{one}/complete")
    again = await new_contact(sup, "support", customer=vip)
    got = (await bob.next("offer", offer__contact_id=again))["offer"]
    assert got["contact_id"] == again
    me = await alice.call("GET", "/api/v1/me")
    assert not me["offers"]
    await bob.call("POST", f"/api/v1/offers/{got['id']}/accept")
    await bob.call("POST", f"/api/v1/contacts/{again}/complete")
    for p in (alice, bob):
        await p.state("offline")
        await p.close()
