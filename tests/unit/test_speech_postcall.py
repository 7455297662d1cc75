"""Post-call transcripts: a finished contact's recording is transcribed into its history,
once; a live contact's recording waits for the end of its call."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ctl.contacts.service import ContactService
from ctl.contacts.states import ContactState
from ctl.speech.postcall import Transcriber
from ctl.store.db import Database, migrate
from ctl.store.models import ContactEvent


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db"
    migrate(url)
    database = Database(url)
    yield database
    await database.close()


def record(path: Path, text: str) -> None:
    """What Asterisk records: 8 kHz wav."""
    wide = path.with_suffix(".22k.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wide), text], check=True)
    subprocess.run(["sox", str(wide), "-r", "8000", str(path)], check=True)
    wide.unlink()


async def transcripts(db: Database) -> list[dict[str, object]]:
    async with db.session(readonly=True) as s:
        rows = await s.execute(select(ContactEvent.data).where(ContactEvent.kind == "transcript"))
        return [d for (d,) in rows]


async def test_recordings_of_finished_contacts_are_transcribed_once(
        db: Database, tmp_path: Path) -> None:
    contacts = ContactService(db)
    recordings = tmp_path / "recording"
    recordings.mkdir()
    record(recordings / "done.wav", "hello I would like a refund for my order please")
    record(recordings / "live.wav", "good morning")
    done = await contacts.open("voice")
    live = await contacts.open("voice")
    await contacts.log(done.id, "call", {"action": "bridged", "recording": "done.wav"})
    await contacts.log(live.id, "voicemail", {"recording": str(recordings / "live.wav")})
    await contacts.log(done.id, "call", {"action": "answered"})  # no recording: nothing
    await contacts.finish(done.id, ContactState.CLOSED, "completed")
    tr = Transcriber(db, contacts, recordings, every=0.1)
    told: list[tuple[str, str, Any]] = []  # what intent and sentiment are asked about
    tr.on_text = lambda contact_id, text, source: told.append((contact_id, text, source))
    try:
        assert await tr.run_once() == 1
        [first] = await transcripts(db)
        assert first["recording"] == "done.wav"
        assert told == [(done.id, first["text"], {"source": "transcript",
                                                  "recording": "done.wav"})]
        words = set(str(first["text"]).split())
        assert words & {"refund", "order", "please", "like"}, first["text"]
        assert await tr.run_once() == 0  # once
        await contacts.finish(live.id, ContactState.ABANDONED, "caller_hangup")
        assert await tr.run_once() == 1  # the voicemail, now that its call is over
        # A new transcriber (a restart, another leader) does not transcribe them again.
        again = Transcriber(db, contacts, recordings)
        assert await again.run_once() == 0
        await again.stop()
        shutil.rmtree(recordings)
    finally:
        await tr.stop()
    assert len(await transcripts(db)) == 2
