"""Publishing flows: versions kept, unchanged sources not re-versioned, the folder watched
(a broken save keeps the previous version), a call's snapshot never changing under it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ctl.ivr.registry import FlowRegistry
from ctl.ivr.validate import Known
from ctl.store.db import Database, migrate

FLOW = "name: hello\nstart: a\nsteps:\n  a: {say: \"%s\"}\n"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ctl.db'}"
    await asyncio.to_thread(migrate, url)
    database = Database(url)
    yield database
    await database.close()


async def test_folder_changes_become_versions_and_broken_saves_are_refused(
        db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "hello.yaml").write_text(FLOW % "one")
    registry = FlowRegistry(db, folder, lambda: Known(), watch_every=None)
    await registry.start()
    first = registry.snapshot()
    assert first["hello"].version == 1

    (folder / "hello.yaml").write_text(FLOW % "two")
    assert [(p.name, p.version, p.new) for p in await registry.refresh()] == [("hello", 2, True)]
    assert registry.snapshot()["hello"].version == 2
    assert first["hello"].version == 1  # a call that started on version 1 keeps it

    (folder / "hello.yaml").write_text("name: hello\nstart: a\nsteps:\n  a: {sey: x}\n")
    assert await registry.refresh() == []
    assert registry.snapshot()["hello"].version == 2
    assert any("unknown verb 'sey'" in e for e in registry.errors)

    (folder / "hello.yaml").write_text(FLOW % "two")  # the same source as version 2
    published = await registry.refresh()
    assert [(p.version, p.new) for p in published] == [(2, False)]
    assert registry.errors == []
    assert [v.version for v in await registry.versions("hello")] == [1, 2]


async def test_another_process_publishing_is_picked_up(db: Database, tmp_path: Path) -> None:
    from ctl.ivr.flow import parse

    ours = FlowRegistry(db, None, lambda: Known(), watch_every=None)
    await ours.start()
    assert "hello" not in ours.snapshot()
    other = FlowRegistry(db, None, lambda: Known(), watch_every=None)  # e.g. the CLI
    await other.publish([parse(FLOW % "hi", tmp_path / "hello.yaml")], by="cli")
    await ours.refresh()
    assert ours.snapshot()["hello"].version == 1
    assert ours.snapshot()["hello"].steps["a"].verb.name == "say"
