"""Calls for the speech tests: both ends of a Local channel in a test's own ARI app.

The far end (";2") runs the real dialplan into Stasis like any caller's channel (the
channel variable CTL_APP, copied from ";1", names the app); the near end (";1") is the
caller's phone, which the test makes speak by playing audio on it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from ctl.contacts.service import ContactService
from ctl.store.db import Database
from ctl.telephony.ari import AriClient
from ctl.telephony.events import Event, channel_of
from ctl.telephony.session import CallInfo, CallSession
from tests.integration.harness import Caller


class SpeechApp(Caller):
    """A test's ARI app; events of a call's line also go to its session, as the
    controller's dispatcher would send them."""

    def __init__(self, ari: AriClient) -> None:
        super().__init__(ari)
        self.sessions: dict[str, CallSession] = {}

    def _on_event(self, event: Event) -> None:
        super()._on_event(event)
        session = self.sessions.get(channel_of(event) or "")
        if session is not None:
            session.queue.put_nowait(event)


@asynccontextmanager
async def speech_app(http_port: int, password: str, name: str) -> AsyncIterator[SpeechApp]:
    ari = AriClient(f"http://127.0.0.1:{http_port}", "ctl", password, name)
    caller = SpeechApp(ari)
    caller.stream.start()
    await asyncio.wait_for(caller.stream.connected.wait(), 10)
    try:
        yield caller
    finally:
        await caller.stream.stop()
        await ari.close()


class Line:
    """One answered call: `phone` is the caller's end, `session` the controller's
    CallSession (fed by `pump`)."""

    def __init__(self, app: SpeechApp, phone: str, line: str, session: CallSession) -> None:
        self.app, self.phone, self.line, self.session = app, phone, line, session

    async def say(self, media: str | list[str]) -> str:
        """The caller speaks: `media` played on the phone end; returns its playback id."""
        playback_id = uuid.uuid4().hex
        await self.app.ari.play(self.phone, media, playback_id)
        return playback_id

    async def hangup(self) -> None:
        for channel in (self.phone, self.line):
            with suppress(Exception):
                await self.app.ari.hangup(channel)


async def dial(app: SpeechApp, db_dir: Path, number: str = "1000") -> Line:
    phone, line = uuid.uuid4().hex, uuid.uuid4().hex
    await app.ari.originate(f"Local/{number}@public/n", channel_id=phone,
                            other_channel_id=line, variables={"CTL_APP": app.ari.app})
    start = await app.wait(line, "StasisStart")
    info = CallInfo(channel_id=line, flow="demo", did=number, caller_number="",
                    caller_name="", state=start["channel"]["state"], adopted=False)
    session = CallSession(app.ari, info, ContactService(Database(
        f"sqlite+aiosqlite:///{db_dir}/unused.db")))  # no contact: log() writes nothing
    app.sessions[line] = session
    await session.answer()  # the phone end enters Stasis once its call is answered
    await app.wait(phone, "StasisStart")
    return Line(app, phone, line, session)
