"""The storage layer against real SQLite and PostgreSQL: each backend gets a fresh database."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ctl.agents.service import AgentService
from ctl.asterisk.config import AgentEndpoint
from ctl.channels import store as channel_store
from ctl.contacts.service import ContactService
from ctl.customers.identity import normalize_email, normalize_phone
from ctl.customers.service import CustomerService
from ctl.errors import ConfigError, NotFound
from ctl.store.db import PROJECT_DIR, Database, is_sqlite, migrate
from ctl.store.models import Base, Customer, Identity, utcnow
from tests.integration.conftest import empty_database


async def _count(db: Database, stmt: Any) -> int:
    async with db.session(readonly=True) as s:
        return int(await s.scalar(stmt) or 0)


# --- schema -------------------------------------------------------------------------


async def test_migrate_is_idempotent_and_matches_models(store_url: str, store: Database) -> None:
    migrate(store_url)  # again, and synchronously inside a running loop

    def diff(conn: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

    async with store.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
        version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    assert version == _head()


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_DIR / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


async def test_connection_settings(store_url: str, store: Database) -> None:
    await store.ping()
    if is_sqlite(store_url):
        assert await asyncio.to_thread(os.path.exists, make_url(store_url).database or "")
        async with store.session(readonly=True) as s:
            assert await s.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await s.scalar(text("PRAGMA busy_timeout")) == 5000
    with pytest.raises(IntegrityError):  # foreign keys are enforced (SQLite: the pragma)
        async with store.session() as s, s.begin():
            s.add(Identity(customer_id="nobody", kind="phone", value="+12025550199"))


async def test_write_runs_one_transaction_beside_async_writers(store: Database) -> None:
    """write() (on SQLite: the writer thread and its own connection) and async sessions
    write at once without "database is locked"; a failing work leaves nothing behind."""
    async def async_writer(i: int) -> None:
        async with store.session() as s, s.begin():
            s.add(Customer(id=f"async-{i}", display_name="a"))

    def work(i: int) -> Callable[[Session], str]:
        def run(s: Session) -> str:
            s.add(Customer(id=f"write-{i}", display_name="w"))
            s.flush()
            return str(s.scalar(select(func.count()).where(Customer.id == f"write-{i}")))
        return run

    results = await asyncio.gather(*(store.write(work(i)) for i in range(10)),
                                   *(async_writer(i) for i in range(10)))
    assert results[:10] == ["1"] * 10

    def failing(s: Session) -> None:
        s.add(Customer(id="rolled-back"))
        s.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.write(failing)
    names = select(func.count()).where(Customer.id.in_(
        ["rolled-back", *(f"{k}-{i}" for k in ("async", "write") for i in range(10))]))
    assert await _count(store, names) == 20


async def test_concurrent_writes_commit_together_and_a_failure_stays_its_own(
        store: Database) -> None:
    """Writes queued while the writer is busy share one COMMIT; one that raises loses
    only its own rows and its waiter alone gets the error; async write sessions get
    their turn between groups (SQLite) or write beside them (PostgreSQL)."""
    commits: list[int] = []
    event.listen(store._sync or store.engine.sync_engine, "commit",
                 lambda _conn: commits.append(1))

    def work(i: int) -> Callable[[Session], int]:
        def run(s: Session) -> int:
            s.add(Customer(id=f"group-{i}", display_name="g"))
            s.flush()
            if i % 10 == 3:
                raise RuntimeError(f"work {i} fails")
            return i
        return run

    async def session_writer(i: int) -> None:
        async with store.session() as s, s.begin():
            s.add(Customer(id=f"turn-{i}", display_name="t"))

    results = await asyncio.gather(*(store.write(work(i)) for i in range(200)),
                                   *(session_writer(i) for i in range(10)),
                                   return_exceptions=True)
    failed = {i for i in range(200) if i % 10 == 3}
    for i, r in enumerate(results[:200]):
        assert (isinstance(r, RuntimeError) and str(r) == f"work {i} fails") \
            if i in failed else r == i
    assert results[200:] == [None] * 10
    ids = [f"group-{i}" for i in range(200)] + [f"turn-{i}" for i in range(10)]
    async with store.session(readonly=True) as s:
        stored = set(await s.scalars(select(Customer.id).where(Customer.id.in_(ids))))
    assert stored == set(ids) - {f"group-{i}" for i in failed}
    assert 0 < len(commits) < 100  # grouped (each alone would be 200)


async def test_a_group_without_failures_runs_without_savepoints(store: Database) -> None:
    """A group whose works all succeed costs no SAVEPOINT (a fifth of the writer's time
    at 300 chat messages/s); one with a failure is rolled back and run again, each work
    in its own SAVEPOINT, so the others still commit exactly once."""
    savepoints: list[int] = []
    event.listen(store._sync or store.engine.sync_engine, "savepoint",
                 lambda *_: savepoints.append(1))
    runs: dict[int, int] = {}

    def work(i: int, fail: bool) -> Callable[[Session], int]:
        def run(s: Session) -> int:
            runs[i] = runs.get(i, 0) + 1
            s.add(Customer(id=f"plain-{i}", display_name="p"))
            s.flush()
            if fail:
                raise RuntimeError(f"work {i} fails")
            return i
        return run

    assert await asyncio.gather(*(store.write(work(i, False)) for i in range(100))) == \
        list(range(100))
    assert savepoints == []
    assert max(runs.values()) == 1
    got = await asyncio.gather(*(store.write(work(i, i == 150)) for i in range(100, 200)),
                               return_exceptions=True)
    assert savepoints  # the group with the failure ran again in SAVEPOINTs
    assert [r for r in got if isinstance(r, RuntimeError)] == [got[50]]
    ids = [f"plain-{i}" for i in range(200)]
    async with store.session(readonly=True) as s:
        stored = set(await s.scalars(select(Customer.id).where(Customer.id.in_(ids))))
    assert stored == set(ids) - {"plain-150"}


async def test_messages_of_one_conversation_written_at_once(store: Database) -> None:
    """Inbound messages of one chat stored in the same groups: every seq once, in the
    order they were queued, and a resent client id answered with the first one."""
    contact = await ContactService(store).open("chat", external_ref="chat:group")

    def row(n: int) -> dict[str, Any]:
        return {"channel": "chat", "direction": "in", "address": "s", "subject": None,
                "text": f"m{n}", "external_id": f"chat:group:{n}", "thread": "chat:group",
                "status": "received", "attachments": [], "meta": {}}

    def take(n: int) -> Callable[[Session], channel_store.Taken]:
        return lambda s: channel_store.take(s, ("email", "group@example.org"), "G", (), row(n))

    order = [*range(30), 4, 17, 29]  # three resent
    taken = await asyncio.gather(*(store.write(take(n)) for n in order))
    assert [t.seq for t in taken[:30]] == list(range(1, 31))
    assert {t.contact_id for t in taken} == {contact.id}
    assert [(t.outcome, t.seq, t.message_id) for t in taken[30:]] == [
        ("duplicate", taken[n].seq, taken[n].message_id) for n in (4, 17, 29)]
    async with store.session(readonly=True) as s:
        stored = await channel_store.of_contact(s, contact.id)
    assert [(m.seq, m.text) for m in stored] == [(n + 1, f"m{n}") for n in range(30)]


async def test_two_nodes_writing_one_conversation_never_share_a_seq(
        store_url: str, store: Database) -> None:
    """Two controllers store messages of one conversation at once (the visitor's socket
    on one, the agent's on the other): every message gets a seq of its own."""
    contact = await ContactService(store).open("chat", external_ref="chat:two-nodes")
    other = Database(store_url)

    def row(n: int) -> dict[str, Any]:
        return {"contact_id": contact.id, "channel": "chat", "address": "s",
                "direction": "in" if n % 2 else "out", "text": f"m{n}", "status": "received"}

    try:
        got = await asyncio.gather(*(
            (store if n % 2 else other).write(partial(channel_store.insert_message, row=row(n)))
            for n in range(40)))
    finally:
        await other.close()
    assert sorted(seq for _, seq in got) == list(range(1, 41))
    async with store.session(readonly=True) as s:
        stored = await channel_store.of_contact(s, contact.id)
    assert sorted(m.seq for m in stored) == list(range(1, 41))


async def test_migration_renumbers_messages_that_share_a_seq(
        store_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Stored before seqs were unique: each duplicate gets the next number, in stored
    order, and other contacts keep theirs."""
    kind = "sqlite" if is_sqlite(store_url) else "postgresql"
    async with empty_database(kind, tmp_path_factory) as url:
        await asyncio.to_thread(migrate, url, "0010")
        db = Database(url)
        try:
            dup, clean = [await ContactService(db).open("chat") for _ in range(2)]
            async with db.session() as s:
                for n, (contact, seq) in enumerate([(dup.id, 1), (dup.id, 2), (dup.id, 2),
                                                     (dup.id, 3), (clean.id, 1)]):
                    await s.execute(text(
                        "INSERT INTO messages (id, contact_id, channel, direction, seq, "
                        "address, text, attachments, meta, status, created_at) VALUES "
                        "(:id, :c, 'chat', 'in', :seq, 's', :t, '[]', '{}', 'received', :at)"),
                        {"id": f"m{n}", "c": contact, "seq": seq, "t": f"m{n}",
                         "at": utcnow() + timedelta(seconds=n)})
                await s.commit()
            await asyncio.to_thread(migrate, url)
            async with db.session(readonly=True) as s:
                got = [(m.text, m.seq) for c in (dup, clean)
                       for m in await channel_store.of_contact(s, c.id)]
        finally:
            await db.close()
    assert got == [("m0", 1), ("m1", 2), ("m2", 3), ("m3", 4), ("m4", 1)]


async def test_ping_raises_when_the_server_is_down() -> None:
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nothing")
    try:
        with pytest.raises(OSError):
            await db.ping()
    finally:
        await db.close()


# --- customers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [("(202) 555-0143", "US", "+12025550143"), ("+1 202-555-0143", "CN", "+12025550143"),
     ("13800138000", "CN", "+8613800138000"), ("tel:+442079460958", "US", "+442079460958"),
     ("1000", "US", None), ("anonymous", "US", None), ("", "US", None), ("abc", "US", None),
     ("+15551234567", "US", "+15551234567"), ("555-0123", "US", None)],
)
def test_normalize_phone(raw: str, region: str, expected: str | None) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Bob <Bob@Example.ORG>", "bob@example.org"), ("mailto:a@b.co", "a@b.co"),
     (" alice@localhost ", "alice@localhost"), ("x", None), ("a@b@c", None), ("", None)],
)
def test_normalize_email(raw: str, expected: str | None) -> None:
    assert normalize_email(raw) == expected


async def test_identify_is_safe_under_concurrency(store: Database) -> None:
    svc = CustomerService(store, region="US")
    before = await _count(store, select(func.count()).select_from(Customer))
    ids = await asyncio.gather(*(svc.identify("phone", "(202) 555-0143") for _ in range(20)))
    assert len(set(ids)) == 1
    assert await svc.identify("phone", "+12025550143") == ids[0]
    after = await _count(store, select(func.count()).select_from(Customer))
    assert after - before == 1  # the losers' customers were rolled back
    rows = select(func.count()).where(Identity.value == "+12025550143")
    assert await _count(store, rows) == 1


async def test_identify_kinds(store: Database) -> None:
    svc = CustomerService(store)
    bob = await svc.identify("email", "Bob <Bob@Example.org>", display_name="Bob")
    assert await svc.identify("email", "bob@example.org") == bob
    assert await svc.identify("wechat_openid", "oX1") not in (bob, None)
    async with store.session(readonly=True) as s:
        customer = await s.get(Customer, bob)
    assert customer is not None and (customer.display_name, customer.tier) == ("Bob", "standard")
    for kind, value in [("phone", "1000"), ("fax", "123"), ("email", "nope")]:
        with pytest.raises(ValueError):
            await svc.identify(kind, value)


# --- agents -------------------------------------------------------------------------


async def test_agents(store: Database) -> None:
    svc = AgentService(store)
    alice, password = await svc.create("alice", "Alice Liddell", "2001")
    assert len(password) >= 20 and password not in alice.sip_ha1
    ha1 = hashlib.md5(f"agent-alice:ctl:{password}".encode()).hexdigest()
    assert alice.sip_ha1 == ha1 and alice.state == "offline"
    assert await svc.endpoints() == [
        AgentEndpoint("agent-alice", "Alice Liddell", "2001", ha1, "alice")]

    with pytest.raises(ConfigError, match="'alice' already exists"):
        await svc.create("alice", "Other", "2002")
    with pytest.raises(ConfigError, match="used by agent 'alice'"):
        await svc.create("bob", "Bob", "2001")
    for username, extension in [("Alice", "2003"), ("-x", "2003"), ("carol", "20a"),
                                ("carol", "1000"), ("a" * 32, "2003")]:
        with pytest.raises(ConfigError):
            await svc.create(username, "Someone", extension)

    racers = await asyncio.gather(
        *(svc.create("dave", "Dave", f"30{i}") for i in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, tuple) for r in racers) == 1, racers
    assert all(isinstance(r, ConfigError) for r in racers if not isinstance(r, tuple))
    assert [a.username for a in await svc.list()] == ["alice", "dave"]

    await svc.delete("alice")
    with pytest.raises(NotFound):
        await svc.delete("alice")
    assert [e.endpoint for e in await svc.endpoints()] == ["agent-dave"]
