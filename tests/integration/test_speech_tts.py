"""Rendered prompts play on the real Asterisk to the end (PlaybackFinished, state done)."""

from __future__ import annotations

import asyncio
import time
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ctl.asterisk.process import AsteriskProcess
from ctl.settings import Settings
from ctl.speech import build
from ctl.speech.tts import Tts
from ctl.telephony.prompt import Prompt
from tests.integration.speech_calls import SpeechApp, dial, speech_app

pytestmark = pytest.mark.asterisk


@pytest.fixture
async def app(asterisk: AsteriskProcess) -> AsyncIterator[SpeechApp]:
    name = f"speech-{uuid.uuid4().hex[:8]}"
    async with speech_app(asterisk.cfg.http_port, asterisk.secrets.ari_password, name) as c:
        yield c


@pytest.fixture
async def tts(settings: Settings) -> AsyncIterator[Tts]:
    t = build.tts(settings)
    yield t
    await t.close()


def seconds(paths: list[Path]) -> float:
    total = 0.0
    for path in paths:
        with wave.open(str(path)) as w:
            total += w.getnframes() / w.getframerate()
    return total


async def test_prompts_play_to_the_end(app: SpeechApp, tts: Tts, tmp_path: Path) -> None:
    line = await dial(app, tmp_path)
    try:
        prompts = [("Your order A12345 costs $12.50.", "en", None),  # piper
                   ("您的订单将于2026年3月5日送达。", "zh", None),  # espeak-ng, Mandarin
                   ("Thank you for calling.", "en", "en-gb")]  # espeak-ng, English
        for text, language, voice in prompts:
            uri = await tts.render(text, language, voice)
            length = seconds(await tts.files(text, language, voice))
            started = time.monotonic()
            assert await line.session.play(uri) == "done"
            # A file Asterisk cannot read finishes at once ("failed" or "done" with nothing
            # heard, depending on the version): the prompt must really have lasted.
            assert time.monotonic() - started > 0.8 * length, (text, length)
        started = time.monotonic()  # the check above tells a missing file from a prompt
        state = await line.session.play("sound:/nonexistent/prompt")
        assert state != "done" or time.monotonic() - started < 0.5
    finally:
        await line.hangup()


async def test_a_prompt_plays_while_it_is_made(app: SpeechApp, tts: Tts,
                                               tmp_path: Path) -> None:
    """A new piper prompt starts playing once its first words are made; the parts made
    meanwhile follow it in order, to the end of the last one."""
    line = await dial(app, tmp_path)
    try:
        number = uuid.uuid4().int % 10**8  # a text no earlier run has cached
        text = f"Your order number {number} will arrive on day 3. Thank you for waiting."
        parts = tts.speak(text)
        assert len(parts) == 3 and not any(isinstance(p, str) for p in parts)
        prompt = Prompt(line.session, parts)
        started = time.monotonic()
        await prompt.start()
        first = await app.wait(line.line, "PlaybackStarted")
        assert not all(isinstance(p, asyncio.Future) and p.done() for p in parts[1:])
        while not await prompt.finished(await line.session.next_event(30)):
            pass
        took = time.monotonic() - started
        files = await tts.files(text)
        assert len(prompt.media) == 3 and prompt.media == await tts.render(text)
        played = [e["playback"] for e in app.events[line.line]
                  if e["type"] == "PlaybackFinished"]
        assert [p["media_uri"] for p in played] == prompt.media  # in order, each played
        assert {p["state"] for p in played} == {"done"}
        assert first["playback"]["id"] == played[0]["id"]
        assert took > 0.9 * seconds(files), (took, seconds(files))  # heard, not skipped
    finally:
        await line.hangup()
