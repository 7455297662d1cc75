"""Synthesizers, each run as its own process: piper (a persistent worker per voice, since
loading a model costs ~0.5 s) and espeak-ng (one process per prompt, it starts in ms).

piper is GPL-3.0: it is only ever run as a separate program, never imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import re
import shutil
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

from ctl.errors import CtlError

log = logging.getLogger(__name__)

ESPEAK_DEFAULTS = {"en": "en-us", "zh": "cmn-latn-pinyin", "cmn": "cmn-latn-pinyin"}
_WROTE = re.compile(r"Wrote (\S+\.wav)")


class SynthesisError(CtlError):
    status = 503
    code = "synthesis_failed"


def piper_model(name: str) -> Path:
    """A piper voice: the path of an .onnx model, or a voice package with `model_path()`."""
    if name.endswith(".onnx"):
        path = Path(name)
    else:
        try:
            path = Path(importlib.import_module(name).model_path())
        except (ImportError, AttributeError) as e:
            raise SynthesisError(f"piper voice {name!r}: neither an .onnx file nor an "
                                 f"installed voice package ({e})") from None
    if not path.is_file():
        raise SynthesisError(f"piper voice model {path} does not exist")
    return path


class PiperWorker:
    """One `python -m piper` process for one voice, fed one line of text per prompt."""

    def __init__(self, model: Path, python: str = sys.executable, timeout: float = 30.0,
                 length_scale: float | None = None) -> None:
        self.model, self.python, self.timeout = model, python, timeout
        self.length_scale = length_scale  # >1 speaks slower
        self._proc: asyncio.subprocess.Process | None = None
        self._out = Path(tempfile.mkdtemp(prefix="ctl-piper-"))
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            return
        scale = ["--length-scale", str(self.length_scale)] if self.length_scale else []
        self._proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "piper", "-m", str(self.model), "-d", str(self._out), *scale,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)

    async def synthesize(self, text: str) -> Path:
        """A wav (the voice's own rate) of `text`; the caller owns and removes the file."""
        async with self._lock:  # one line in, one file out: requests must not interleave
            await self.start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stderr is not None
            line = " ".join(text.split()) + "\n"
            try:
                proc.stdin.write(line.encode())
                await proc.stdin.drain()
                return await asyncio.wait_for(self._wrote(proc.stderr), self.timeout)
            except (OSError, TimeoutError, EOFError) as e:
                await self.close()
                raise SynthesisError(f"piper ({self.model.name}) failed: "
                                     f"{e or type(e).__name__}") from None

    @staticmethod
    async def _wrote(stderr: asyncio.StreamReader) -> Path:
        while True:
            raw = await stderr.readline()
            if not raw:
                raise EOFError("piper exited")
            found = _WROTE.search(raw.decode(errors="replace"))
            if found:
                return Path(found.group(1))

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
        shutil.rmtree(self._out, ignore_errors=True)
        self._out.mkdir()  # a later synthesize() starts the worker again


async def espeak(text: str, voice: str, out: Path, speed: int | None = None) -> None:
    args = ["espeak-ng", "-v", voice, "-w", str(out)]
    if speed:
        args += ["-s", str(speed)]
    await run(*args, "--", text)


async def to_asterisk(src: Path, dst: Path, rate: int = 8000) -> None:
    """Mono 16-bit wav at `rate`: Asterisk's wav format is 8 kHz (a 22.05 kHz one fails).
    Resampled here, not by sox: a process start costs ~10-30 ms of a prompt's first audio."""
    await asyncio.to_thread(_resample_wav, src, dst, rate)


def _resample_wav(src: Path, dst: Path, rate: int) -> None:
    try:
        with wave.open(str(src)) as w:
            width, channels, given = w.getsampwidth(), w.getnchannels(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as e:
        raise SynthesisError(f"unreadable synthesizer output {src.name}: {e}") from None
    if width != 2:
        raise SynthesisError(f"synthesizer output {src.name} is not 16-bit")
    pcm = np.frombuffer(frames, "<i2").reshape(-1, channels).mean(axis=1)
    out = resample(pcm, given, rate)
    with wave.open(str(dst), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes())


def resample(pcm: np.ndarray, given: int, rate: int) -> np.ndarray:
    """`pcm` from `given` Hz to `rate` Hz, band-limited in the frequency domain (what lies
    above the new Nyquist frequency is dropped, not folded back as aliasing)."""
    if given == rate or not len(pcm):
        return pcm
    g = math.gcd(given, rate)
    up, down = rate // g, given // g
    n = -(-len(pcm) // down) * down  # padded so both lengths are whole (22050 -> 8000)
    n_out = n // down * up
    out: np.ndarray = np.fft.irfft(np.fft.rfft(pcm, n), n_out) * (n_out / n)
    return out[:round(len(pcm) * up / down)]


async def run(*args: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError:
        raise SynthesisError(f"{args[0]} is not installed (bootstrap.sh installs it)") from None
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise SynthesisError(f"{args[0]} failed ({proc.returncode}): "
                             f"{err.decode(errors='replace').strip()[:300]}")
