"""A customer's history as the 360 tests need it: a finished call with its IVR path,
recording and transcript logged as the IVR, the voice queue and the transcriber log
them, and a real wav file where Asterisk writes recordings."""

from __future__ import annotations

import uuid
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from ctl.contacts.service import logged
from ctl.contacts.states import ContactState
from ctl.store.models import Base, new_id, utcnow
from tests.integration.channels_app import App


def phone() -> str:
    return f"+1555{uuid.uuid4().int % 10**7:07d}"


def tone(path: Path, seconds: float = 1.0) -> None:
    """A real 8 kHz mono wav, as Asterisk records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * int(8000 * 2 * seconds / 256))


async def call(app: App, customer_id: str, recording: str) -> str:
    """A finished call as the IVR and the voice queue log it: menu (key 2), refunds
    queue, bridged to an agent and recorded, then transcribed."""
    contacts = app.services.contacts
    contact = await contacts.open("voice", customer_id=customer_id,
                                  then=(ContactState.IVR, "answered", None))
    await contacts.log_many(contact.id, [
        logged("ivr", {"flow": "main", "version": 1, "step": "menu", "verb": "menu"}),
        logged("prompt", {"media": "sound:menu"}),
        logged("keys", {"keys": "2"}),
        logged("ivr_left", {"step": "menu", "outcome": "2", "ms": 900}),
        logged("ivr", {"flow": "main", "version": 1, "step": "refunds", "verb": "queue"}),
        logged("call", {"action": "bridged", "agent": "someone", "recording": recording}),
    ])
    await contacts.finish(contact.id, ContactState.CLOSED, "caller_hangup")
    await contacts.log(contact.id, "transcript", {
        "recording": recording, "text": "i would like a refund for my order", "source_event": 1})
    return contact.id


async def contacts(app: App, customer_id: str, n: int, channels: tuple[str, ...] = ("chat",),
                   step: timedelta = timedelta(minutes=1), same: int = 1
                   ) -> list[dict[str, Any]]:
    """`n` finished contacts of the customer going back from now, `same` at each instant
    and `step` between instants, written directly (a long history, without living
    through it)."""
    now = utcnow()
    rows = [{"id": new_id(), "channel": channels[i % len(channels)],
             "customer_id": customer_id, "state": "closed", "priority": 0, "attributes": {},
             "criteria": [], "created_at": now - step * (i // same), "updated_at": now,
             "version": 1} for i in range(n)]
    table = Base.metadata.tables["contacts"]
    await app.services.db.write(lambda s: s.execute(insert(table), rows))
    return rows
