"""Rendered prompts play on the real Asterisk to the end (PlaybackFinished, state done)."""

from __future__ import annotations

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


def seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


async def test_prompts_play_to_the_end(app: SpeechApp, tts: Tts, tmp_path: Path) -> None:
    line = await dial(app, tmp_path)
    try:
        prompts = [("Your order A12345 costs $12.50.", "en", None),  # piper
                   ("您的订单将于2026年3月5日送达。", "zh", None),  # espeak-ng, Mandarin
                   ("Thank you for calling.", "en", "en-gb")]  # espeak-ng, English
        for text, language, voice in prompts:
            uri = await tts.render(text, language, voice)
            length = seconds(await tts.file(text, language, voice))
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
