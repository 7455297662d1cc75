"""The storage layer against real SQLite and PostgreSQL: each backend gets a fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ctl.agents.service import AgentService
from ctl.asterisk.config import AgentEndpoint
from ctl.channels import store as channel_store
from ctl.contacts.service import ContactService, logged
from ctl.contacts.states import FINAL, ContactState
from ctl.customers.identity import normalize_email, normalize_phone
from ctl.customers.service import CustomerService
from ctl.errors import ConfigError, InvalidTransition, NotFound
from ctl.store.db import PROJECT_DIR, Database, is_sqlite, migrate
from ctl.store.models import Base, Contact, Customer, Identity, utcnow

PG_ADMIN = os.environ.get("CTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async with _empty_database(request.param, tmp_path_factory) as url:
        yield url


@contextlib.asynccontextmanager
async def _empty_database(kind: str, tmp: pytest.TempPathFactory) -> AsyncIterator[str]:
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
        store_url: str, store: Database) -> None:
    """Writes queued while the writer is busy share one COMMIT (SQLite file); each runs
    in its own SAVEPOINT, so one that raises loses only its own rows and its waiter
    alone gets the error; async write sessions get their turn between groups."""
    commits: list[int] = []
    if store._sync is not None:  # SQLite: the writer thread's engine
        event.listen(store._sync, "commit", lambda _conn: commits.append(1))

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
    if is_sqlite(store_url):
        assert 0 < len(commits) < 100  # grouped (each alone would be 200)


async def test_messages_of_one_conversation_written_at_once(store_url: str,
                                                          store: Database) -> None:
    """Inbound messages of one chat stored in the same groups: every seq once, in the
    order they were queued, and a resent client id answered with the first one."""
    if not is_sqlite(store_url):  # concurrent creators of one customer retry there
        pytest.skip("PostgreSQL runs writes side by side; ChannelService serialises them")
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
    async with _empty_database(kind, tmp_path_factory) as url:
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


# --- contacts -----------------------------------------------------------------------


async def test_contact_lifecycle(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("voice", external_ref="life.1", node="n1", attributes={"did": "100"})
    assert (c.state, c.version, c.closed_at) == ("new", 1, None)
    path = ["ivr", "queued", "offered", "queued", "offered", "assigned", "wrapup"]
    for to in path:
        c = await svc.transition(c.id, to, f"to-{to}")
    await svc.transition(c.id, "closed", "done", {"by": "agent"})

    got = await svc.get(c.id)
    assert (got.state, got.close_reason, got.version) == ("closed", "done", 9)
    assert got.attributes == {"did": "100"} and got.node == "n1"
    assert got.closed_at is not None and got.closed_at.utcoffset() == timedelta(0)
    assert got.created_at.utcoffset() == timedelta(0) and got.closed_at >= got.created_at
    events = await svc.events(c.id)
    states = ["new", *path, "closed"]
    assert [(e.from_state, e.to_state) for e in events] == list(
        zip([None, *states[:-1]], states, strict=True)
    )
    assert events[0].reason == "created" and events[-1].data == {"by": "agent"}
    assert all(e.kind == "state" for e in events)


async def test_finish_is_idempotent(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("chat")
    first = await svc.finish(c.id, "abandoned", "customer_left")
    again = await svc.finish(c.id, "closed", "sweep", {"x": 1})
    assert (first.state, again.state, again.close_reason) == ("abandoned",) * 2 + ("customer_left",)
    assert len(await svc.events(c.id)) == 2
    with pytest.raises(ValueError, match="final"):
        await svc.finish(c.id, "queued", "nope")


async def test_invalid_transition_writes_nothing(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("email")
    with pytest.raises(InvalidTransition, match="from new to wrapup"):
        await svc.transition(c.id, "wrapup", "skip")
    got = await svc.get(c.id)
    assert (got.state, got.version, got.updated_at) == ("new", 1, c.updated_at)
    assert len(await svc.events(c.id)) == 1


async def test_unknown_contact_is_not_found(store: Database) -> None:
    svc = ContactService(store)
    for call in (svc.get("nope"), svc.transition("nope", "ivr", "x"),
                 svc.finish("nope", "closed", "x"), svc.log("nope", "ivr", {})):
        with pytest.raises(NotFound):
            await call


async def test_log_external_ref_and_unfinished(store: Database) -> None:
    svc = ContactService(store)
    old = await svc.open("voice", external_ref="ref.9")
    await svc.finish(old.id, "closed", "hangup")
    live = await svc.open("voice", external_ref="ref.9")
    chat = await svc.open("chat", external_ref="ref.9")
    found = await svc.by_external_ref("voice", "ref.9")
    assert found is not None and found.id == live.id
    assert await svc.by_external_ref("voice", "ref.404") is None

    await svc.log(live.id, "ivr", {"menu": "main", "digit": "1"})
    last = (await svc.events(live.id))[-1]
    assert (last.kind, last.to_state, last.data) == ("ivr", None, {"menu": "main", "digit": "1"})
    with pytest.raises(ValueError):
        await svc.log(live.id, "state", {})

    assert chat.id in {c.id for c in await svc.unfinished("chat")}
    voice = {c.id for c in await svc.unfinished("voice")}
    assert live.id in voice and old.id not in voice and chat.id not in voice
    await svc.finish(live.id, "closed", "hangup")
    found = await svc.by_external_ref("voice", "ref.9")
    assert found is not None and found.id == live.id  # all final: the newest


async def test_log_each_writes_several_contacts_at_once(store: Database) -> None:
    svc = ContactService(store)
    a, b = await svc.open("chat"), await svc.open("email")
    holders = await svc.log_each([(a.id, logged("nlp", {"n": 1})), ("gone", logged("nlp", {})),
                                  (b.id, logged("nlp", {"n": 2})), (a.id, logged("nlp", {"n": 3}))])
    assert holders == {a.id: None, b.id: None}
    assert [e.data for e in await svc.events(a.id) if e.kind == "nlp"] == [{"n": 1}, {"n": 3}]
    assert [e.data for e in await svc.events(b.id) if e.kind == "nlp"] == [{"n": 2}]
    assert await svc.log_each([]) == {}


async def test_optimistic_locking(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("chat")
    async with store.session() as s:
        stale = await s.get(Contact, c.id)
        assert stale is not None
        await s.commit()  # the row stays loaded at version 1
        await svc.transition(c.id, "queued", "another node")
        stale.priority = 5
        with pytest.raises(StaleDataError):
            await s.commit()
    got = await svc.get(c.id)
    assert (got.state, got.priority, got.version) == ("queued", 0, 2)


async def test_concurrent_transitions_have_one_winner(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("voice")
    await svc.transition(c.id, "ivr", "flow")
    targets = ["closed", "abandoned"] * 4
    results = await asyncio.gather(
        *(svc.transition(c.id, to, "race") for to in targets), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, Contact)]
    assert len(winners) == 1, results
    assert all(isinstance(r, InvalidTransition) for r in results if r not in winners)
    finals = [e for e in await svc.events(c.id) if e.to_state in FINAL]
    assert len(finals) == 1 and finals[0].to_state == winners[0].state

    again = await asyncio.gather(*(svc.finish(c.id, "closed", "sweep") for _ in range(5)))
    assert {r.state for r in again} == {winners[0].state}
    assert len(await svc.events(c.id)) == 3


async def test_concurrent_finishes_close_once(store: Database) -> None:
    """finish() is Core statements with its own version check: racing finishes (on
    PostgreSQL side by side) write one final state, and each returns that state."""
    svc = ContactService(store)
    c = await svc.open("voice", then=(ContactState.IVR, "flow", None))
    results = await asyncio.gather(*(svc.finish(
        c.id, to, "race", logged=[logged("call", {"n": i})])
        for i, to in enumerate(["closed", "abandoned"] * 4)))
    events = await svc.events(c.id)
    finals = [e for e in events if e.to_state in FINAL]
    assert len(finals) == 1 and {r.state for r in results} == {finals[0].to_state}
    assert sorted(e.data["n"] for e in events if e.kind == "call") == list(range(8))
    got = await svc.get(c.id)
    assert (got.state, got.version, got.close_reason) == (finals[0].to_state, 2, "race")


async def test_open_with_its_customer_and_first_move_in_one_transaction(
        store: Database) -> None:
    svc = ContactService(store)
    before = await _count(store, select(func.count()).select_from(Customer))
    # Callers with a new number at once: one customer, whoever creates it (on PostgreSQL
    # the losers hit the unique identity and retry their whole transaction).
    opened = await asyncio.gather(*(svc.open(
        "voice", identity=("phone", "+12025550177"), external_ref=f"one.{i}",
        then=(ContactState.IVR, "flow_started", {"flow": "demo"})) for i in range(8)))
    assert await _count(store, select(func.count()).select_from(Customer)) == before + 1
    assert len({c.customer_id for c in opened}) == 1 and opened[0].customer_id is not None
    for c in opened:
        got = await svc.get(c.id)
        assert (got.state, got.version, got.customer_id) == ("ivr", 1, c.customer_id)
        events = await svc.events(c.id)
        assert [(e.from_state, e.to_state, e.reason) for e in events] == [
            (None, "new", "created"), ("new", "ivr", "flow_started")]
        assert events[1].data == {"flow": "demo"}
    with pytest.raises(InvalidTransition):  # the first move is checked before any write
        await svc.open("voice", then=(ContactState.WRAPUP, "skip", None))


async def test_held_log_lines_are_written_before_the_state_change(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("voice", then=(ContactState.IVR, "flow_started", None))
    held = [logged("call", {"action": "answered"}), logged("prompt", {"state": "done"})]
    await svc.log_many(c.id, [logged("call", {"action": "early"})])
    await svc.finish(c.id, "closed", "completed", logged=held)
    events = await svc.events(c.id)
    assert [(e.kind, e.to_state or e.data.get("action") or e.data.get("state"))
            for e in events] == [("state", "new"), ("state", "ivr"), ("call", "early"),
                                 ("call", "answered"), ("prompt", "done"),
                                 ("state", "closed")]
    assert events[3].at == held[0][2]  # when it happened, not when it was written
    # Already final: the lines are still kept, the state is not touched.
    await svc.finish(c.id, "abandoned", "late", logged=[logged("call", {"action": "late"})])
    events = await svc.events(c.id)
    assert events[-1].data == {"action": "late"} and (await svc.get(c.id)).state == "closed"
    with pytest.raises(ValueError):
        logged("state", {})


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
