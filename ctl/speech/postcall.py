"""Post-call transcripts: each recording of a finished contact (the caller-agent bridge,
a voicemail) is transcribed free-form and the text added to the contact's history.

It works from the database alone (the interaction log names the recordings), so it
needs no hook in the call path and catches up after a restart; the leader runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ctl.contacts.service import ContactService
from ctl.contacts.states import FINAL
from ctl.speech.decoders import decode_in_worker
from ctl.speech.worker import Worker
from ctl.store.db import Database
from ctl.store.models import Contact, ContactEvent

log = logging.getLogger(__name__)


class Transcriber:
    def __init__(self, db: Database, contacts: ContactService, recordings: Path,
                 vosk_models: dict[str, Path] | None = None, language: str = "en",
                 every: float = 30.0) -> None:
        self.db, self.contacts, self.recordings = db, contacts, recordings
        self.model = str((vosk_models or {}).get(language, "pocketsphinx-free"))
        self.every = every
        self._after = 0  # the last contact event looked at
        self._waiting: dict[int, tuple[str, str]] = {}  # recordings of live contacts
        self._task: asyncio.Task[None] | None = None
        # One worker of its own: a long recording must not delay live recognitions.
        self._worker = Worker()
        # Told of each transcript (contact id, text, source): intent and sentiment.
        self.on_text: Callable[[str, str, dict[str, Any]], None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="transcripts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._worker.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("transcribing recordings failed")
            await asyncio.sleep(self.every)

    async def run_once(self) -> int:
        """Transcribe what is due; the number of transcripts written."""
        done = 0
        for event_id, contact_id, name in await self._due():
            path = self.recordings / Path(name).name  # never outside the recordings
            if path.is_file():
                text = await self.transcribe(path)
                await self.contacts.log(contact_id, "transcript", {
                    "recording": path.name, "text": text, "source_event": event_id})
                if self.on_text is not None:
                    self.on_text(contact_id, text, {"source": "transcript",
                                                    "recording": path.name})
                done += 1
        return done

    async def _due(self) -> list[tuple[int, str, str]]:
        """Recordings named in the log since the last look, of contacts that are over
        (a recording is complete once its call is); those of live contacts wait."""
        async with self.db.session(readonly=True) as s:
            if self._after == 0:  # after a restart: skip what was transcribed before
                rows = await s.execute(select(ContactEvent.data)
                                       .where(ContactEvent.kind == "transcript"))
                self._after = max((int(d.get("source_event", 0)) for (d,) in rows),
                                  default=0)
            rows = await s.execute(
                select(ContactEvent.id, ContactEvent.contact_id, ContactEvent.data)
                .where(ContactEvent.id > self._after,
                       ContactEvent.kind.in_(("call", "voicemail")))
                .order_by(ContactEvent.id).limit(500))
            for event_id, contact_id, data in rows:
                self._after = event_id
                name = _recording(data)
                if name:
                    self._waiting[event_id] = (contact_id, name)
            ids = {c for c, _ in self._waiting.values()}
            states = dict((await s.execute(select(Contact.id, Contact.state)
                                           .where(Contact.id.in_(ids)))).all()) if ids else {}
        due = [(e, c, n) for e, (c, n) in self._waiting.items() if states.get(c) in FINAL]
        for event_id, _, _ in due:
            del self._waiting[event_id]
        return due

    async def transcribe(self, path: Path) -> str:
        pcm = await asyncio.to_thread(_pcm16, path)
        text: str = await self._worker.run(decode_in_worker, self.model, pcm, {})
        return text


def _recording(data: dict[str, Any]) -> str | None:
    name = data.get("recording")
    return name if isinstance(name, str) and name.endswith(".wav") else None


def _pcm16(path: Path) -> bytes:
    """The recording as 16 kHz mono PCM (Asterisk records 8 kHz)."""
    out = subprocess.run(["sox", str(path), "-r", "16000", "-c", "1", "-b", "16", "-t", "raw",
                          "-"], check=True, capture_output=True)
    return out.stdout
