"""A fresh, migrated database per backend for the ticket tests (no Asterisk needed)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from ctl.store.db import Database, migrate

PG_ADMIN = os.environ.get("CTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def ticket_db(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('tickets')}/ctl.db"
        await asyncio.to_thread(migrate, url)
        db = Database(url)
        yield db
        await db.close()
        return
    name = f"ctl_tickets_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=name)
        rendered = url.render_as_string(hide_password=False)
        await asyncio.to_thread(migrate, rendered)
        db = Database(rendered)
        yield db
        await db.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
