"""Alembic environment. Run through ctl.store.db.migrate(), which passes the URL.

The URL is an async one (aiosqlite / asyncpg): we run the migrations on an async engine
through `run_sync`, on an event loop of our own so that the caller's loop (if any) is
never touched.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ctl.store.db import is_sqlite
from ctl.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    url = url or os.environ.get("CTL_DATABASE_URL")
    if not url:
        raise RuntimeError("no database URL: call ctl.store.db.migrate(url)")
    return str(url)


def _options(url: str) -> dict[str, Any]:
    # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
    return {"target_metadata": target_metadata, "render_as_batch": is_sqlite(url)}


def run_offline() -> None:
    url = _url()
    context.configure(url=url, literal_binds=True, **_options(url))
    with context.begin_transaction():
        context.run_migrations()


# Any constant: every ctl process migrating the same PostgreSQL database takes this lock.
_PG_MIGRATION_LOCK = 0x63746C00


def _run_sync(connection: Connection, url: str) -> None:
    if connection.dialect.name == "postgresql":
        # Several ctl processes may start together against one database: the transaction
        # lock makes the later ones wait, then find the schema already at head.
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    context.configure(connection=connection, **_options(url))
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync, url)
            await connection.commit()
    finally:
        await engine.dispose()


def _in_own_loop(url: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_async(url))
        return
    # Called synchronously from inside a running loop: asyncio.run would refuse, and
    # blocking that loop on itself would deadlock, so the migration gets its own thread.
    errors: list[BaseException] = []

    def work() -> None:
        try:
            asyncio.run(_run_async(url))
        except BaseException as e:
            errors.append(e)

    worker = threading.Thread(target=work, name="ctl-migrate")
    worker.start()
    worker.join()
    if errors:
        raise errors[0]


if context.is_offline_mode():
    run_offline()
else:
    _in_own_loop(_url())
