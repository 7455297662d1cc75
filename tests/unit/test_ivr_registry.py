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


BANK = """name: %s
languages: [en, zh-CN]
start: a
steps:
  a:
    listen:
      prompt: {en: "How can I help?", zh-CN: "请问有什么可以帮您\uff1f"}
      intents:
        lost_card: {phrases: {en: [block my card, "%s"], zh-CN: [挂失银行卡]}, next: b}
        agent: {phrases: {en: [agent], zh-CN: [人工]}, dtmf: "0", next: b}
    on: {no_match: b, no_input: b}
  b:
    menu: {prompt: "Press 1", choices: {"1": a}}
"""


def test_listen_phrases_of_every_flow_and_language_make_text_examples(tmp_path: Path
                                                                      ) -> None:
    """What callers say in any flow's listen step, every language, once each; menus
    take keys and name no intent."""
    from ctl.ivr.flow import parse
    from ctl.ivr.live import intent_phrases

    flows = [parse(BANK % (n, extra), tmp_path / f"{n}.yaml")
             for n, extra in (("retail", "my card was stolen"), ("bank", "block my card"))]
    assert intent_phrases(flows) == {
        "lost_card": ["block my card", "挂失银行卡", "my card was stolen"],
        "agent": ["agent", "人工"]}
