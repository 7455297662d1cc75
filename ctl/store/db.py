"""The SQL database: one async engine per process, sessions, and alembic migrations."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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

    @asynccontextmanager
    async def session(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """A session; `readonly=True` promises no writes (lets SQLite readers run concurrently)."""
        async with (self._readers if readonly else self._sessions)() as s:
            yield s

    async def ping(self) -> None:
        async with self._reader.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


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
