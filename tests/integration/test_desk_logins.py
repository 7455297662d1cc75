"""Desk logins on SQLite and PostgreSQL: argon2 hashes (scrypt ones from before still
work and are replaced), and the lock after repeated failures, which another process (a
fresh service on the same database) sees too."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from ctl.agents.auth import AuthService
from ctl.agents.lockout import Lockout
from ctl.agents.service import AgentService
from ctl.errors import AccountLocked, Unauthorized
from ctl.store.db import Database, migrate
from ctl.store.models import Agent
from tests.integration.channels_app import database


@pytest.fixture(scope="module", params=["sqlite", "pg"])
async def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[str]:
    async with database(request.param, tmp_path_factory.mktemp("logins")) as u:
        await asyncio.to_thread(migrate, u)
        yield u


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    d = Database(url)
    yield d
    await d.close()


def auth(db: Database, after: int = 3, period: float = 60.0) -> AuthService:
    return AuthService(db, 1.0, "k" * 24, Lockout(db, after, period))


def scrypt_hash(password: str) -> str:
    """The format stored before argon2 (ctl 0.1's hash_password)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    b64 = [base64.urlsafe_b64encode(x).decode().rstrip("=") for x in (salt, digest)]
    return "$".join(["scrypt", str(2**14), "8", "1", *b64])


async def new_agent(db: Database) -> tuple[str, str]:
    name = f"l{uuid.uuid4().hex[:8]}"
    _, password = await AgentService(db).create(name, name, str(5000000 + uuid.uuid4().int
                                                                 % 1000000))
    return name, password


async def stored_hash(db: Database, username: str) -> str:
    async with db.session(readonly=True) as s:
        return str(await s.scalar(select(Agent.password_hash)
                                  .where(Agent.username == username)))


async def test_argon2_and_old_scrypt_hashes(db: Database) -> None:
    name, password = await new_agent(db)
    assert (await stored_hash(db, name)).startswith("$argon2id$")
    async with db.session() as s, s.begin():
        await s.execute(update(Agent).where(Agent.username == name)
                        .values(password_hash=scrypt_hash(password)))
    with pytest.raises(Unauthorized):
        await auth(db).login(name, "not " + password)
    await auth(db).login(name, password)  # the old hash still verifies...
    rehashed = await stored_hash(db, name)
    assert rehashed.startswith("$argon2id$")  # ...and is replaced by argon2
    await auth(db).login(name, password)
    assert await stored_hash(db, name) == rehashed  # current hashes are left alone


async def test_lock_after_failures_holds_across_processes(db: Database, url: str) -> None:
    name, password = await new_agent(db)
    first = auth(db)
    for _ in range(2):
        with pytest.raises(Unauthorized, match="wrong username or password"):
            await first.login(name, "guess")
    with pytest.raises(AccountLocked) as locked:
        await first.login(name, "guess")
    assert "locked until" in str(locked.value)
    other = Database(url)  # another controller process, or this one after a restart
    try:
        with pytest.raises(AccountLocked):
            await auth(other).login(name, password)  # the right password does not help
    finally:
        await other.close()
    # An unknown name locks the same way: the lock does not tell which names exist.
    ghost = f"ghost{uuid.uuid4().hex[:6]}"
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await first.login(ghost, "guess")
    with pytest.raises(AccountLocked):
        await first.login(ghost, "guess")
    # An admin's new password lifts the lock.
    password = await AgentService(db).reset_password(name)
    await first.login(name, password)


async def test_a_good_login_forgets_failures(db: Database) -> None:
    name, password = await new_agent(db)
    a = auth(db, after=2)
    with pytest.raises(Unauthorized):
        await a.login(name, "guess")
    await a.login(name, password)
    with pytest.raises(Unauthorized):  # one failure in a row again, not two
        await a.login(name, "guess")
    with pytest.raises(AccountLocked):
        await a.login(name, "guess")


def test_hash_format() -> None:
    from ctl.agents.auth import hash_password, needs_rehash, verify_password
    h = hash_password("秘密 password")
    assert verify_password("秘密 password", h) and not verify_password("other", h)
    assert not needs_rehash(h) and needs_rehash(scrypt_hash("x"))
    assert verify_password("x", scrypt_hash("x")) and not verify_password("x", "garbage")


_STEPS = st.lists(st.one_of(st.just(("fail", 0.0)), st.just(("ok", 0.0)),
                            st.tuples(st.just("wait"), st.floats(0.5, 40.0))),
                  max_size=25)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_STEPS)
def test_lock_follows_the_model(url: str, steps: list[tuple[str, float]]) -> None:
    """Any sequence of failed and good logins and waits: locked exactly when the model of
    "N failures in a row, each within the period of the previous, lock for the period"
    says so, and a good login while unlocked forgets every failure."""
    asyncio.run(_run_lock_model(url, steps))


async def _run_lock_model(url: str, steps: list[tuple[str, float]]) -> None:
    after, period = 3, 30.0
    clock = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 1000)]
    db = Database(url)
    lock = Lockout(db, after, period, clock=lambda: clock[0])
    name = f"m{uuid.uuid4().hex[:10]}"
    failures, last, until = 0, None, None  # the model
    try:
        for kind, seconds in steps:
            now = clock[0]
            if kind == "wait":
                clock[0] = now + timedelta(seconds=seconds)
                continue
            if until is not None and until > now:
                with pytest.raises(AccountLocked):
                    await lock.check(name)
                continue
            await lock.check(name)
            if kind == "ok":
                await lock.succeeded(name)
                failures, last, until = 0, None, None
                continue
            failures = 1 if last is not None and last < now - timedelta(seconds=period) \
                else failures + 1
            last = now
            expected = None
            if failures >= after:
                failures, until = 0, now + timedelta(seconds=period)
                expected = until
            assert await lock.failed(name) == expected
    finally:
        await db.close()
