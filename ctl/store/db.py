"""The SQL database: one async engine per process, sessions, and alembic migrations."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

PROJECT_DIR = Path(__file__).resolve().parents[2]
_READ_ONLY = "ctl_read_only"
# alembic's `context` is module-global: two migrations at once would share it.
_MIGRATE_LOCK = threading.Lock()


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str | URL) -> None:
    u = make_url(url)
    name = u.database or ""
    if u.get_backend_name() != "sqlite" or name in ("", ":memory:"):
        return
    if not name.startswith("file:"):  # a SQLite URI (uri=true), maybe in memory: not a path
        Path(name).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_file(url: str | URL) -> bool:
    """A SQLite database in a file (not in memory): several connections share it."""
    u = make_url(url)
    name = u.database or ""
    return name not in ("", ":memory:") and "mode=memory" not in str(u) and \
        not name.startswith("file::memory:")


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # NOTE: sqlite3's legacy mode skips BEGIN before SELECT, so a read-then-write
    # transaction upgrades its lock late and fails at once with "database is locked"
    # (busy_timeout does not apply to a stale WAL snapshot). We take transaction
    # control away from the driver and emit BEGIN IMMEDIATE ourselves (_sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "busy_timeout=5000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers queue on the lock (up to busy_timeout) instead of failing later; SQLite
    # serialises writers anyway. Read-only sessions keep a plain BEGIN: WAL lets them
    # run beside a writer.
    if conn.get_execution_options().get(_READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        options: dict[str, Any] = {}
        if is_sqlite(url):
            ensure_sqlite_dir(url)
        else:
            options["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if is_sqlite(url):
            event.listen(self.engine.sync_engine, "connect", _sqlite_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self._reader = self.engine.execution_options(**{_READ_ONLY: True})
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._readers = async_sessionmaker(self._reader, expire_on_commit=False)
        # write(): on a SQLite file, one thread with its own connection runs each
        # transaction whole (see write()).
        self._writer: ThreadPoolExecutor | None = None
        self._sync: Engine | None = None
        self._sync_sessions: sessionmaker[Session] | None = None
        if is_sqlite(url) and _sqlite_file(url):
            self._sync = create_engine(make_url(url).set(drivername="sqlite"),
                                       pool_size=1, max_overflow=0)
            event.listen(self._sync, "connect", _sqlite_connect)
            event.listen(self._sync, "begin", _sqlite_begin)
            self._sync_sessions = sessionmaker(self._sync, expire_on_commit=False)
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="ctl-db-writer")

    @asynccontextmanager
    async def session(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """A session; `readonly=True` promises no writes (lets SQLite readers run concurrently)."""
        async with (self._readers if readonly else self._sessions)() as s:
            yield s

    async def write(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in one write transaction, committed; returns what it returns.

        `work` is plain synchronous ORM/Core code (no awaits) and may run in another
        thread: it must touch nothing but its session and its arguments. Objects it
        returns stay loaded (no expiry on commit).

        NOTE: on a SQLite file it runs in this process's writer thread, the whole
        transaction in one hop. Through aiosqlite each statement is 3-4 hops between the
        event loop and aiosqlite's thread (cursor, execute, fetch, close; ~100 us of CPU
        each), and the write lock stays held while each hop waits for its turn on a busy
        loop; the hot path of a call (open and close its contact) spends most of its CPU
        there. Elsewhere (PostgreSQL) it runs on the async engine (`run_sync`).
        """
        if self._writer is None or self._sync_sessions is None:
            async with self._sessions() as s, s.begin():
                return await s.run_sync(work)
        sessions = self._sync_sessions

        def transaction() -> T:
            with sessions() as s, s.begin():
                return work(s)

        return await asyncio.get_running_loop().run_in_executor(self._writer, transaction)

    async def ping(self) -> None:
        async with self._reader.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
        if self._writer is not None and self._sync is not None:
            # The writer's sqlite3 connection may only be closed by its own thread.
            await asyncio.get_running_loop().run_in_executor(self._writer, self._sync.dispose)
            self._writer.shutdown()


def migrate(url: str) -> None:
    """Upgrade the database at `url` to the newest schema (blocking; safe in any thread)."""
    from alembic import command
    from alembic.config import Config

    ensure_sqlite_dir(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_DIR / "migrations"))
    cfg.set_main_option("path_separator", "os")
    # Passed as an attribute, not a main option: ini interpolation would mangle a "%"
    # in a percent-encoded password.
    cfg.attributes["url"] = url
    with _MIGRATE_LOCK:
        command.upgrade(cfg, "head")
