"""Caller audio as it arrives from Asterisk (RTP from an external media channel) and the
voice activity detector that finds where speech starts and ends."""

from __future__ import annotations

import asyncio
import enum
import struct
from dataclasses import dataclass, field
from typing import cast

import numpy as np

RATE = 16000  # slin16: what the recognisers take, so nothing is resampled here
FRAME = RATE // 50  # 20 ms


class RtpReceiver(asyncio.DatagramProtocol):
    """Payloads of one RTP stream (slin16, network byte order) as little-endian PCM."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> RtpReceiver:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(cls, local_addr=(host, 0))
        proto.transport = transport  # connection_made runs a loop turn later
        return proto

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        payload = rtp_payload(data)
        if payload:
            self.queue.put_nowait(np.frombuffer(payload, ">i2").astype("<i2").tobytes())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def rtp_payload(packet: bytes) -> bytes:
    """The payload of an RTP packet (RFC 3550: CSRCs, extension and padding skipped)."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return b""
    start = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10 and len(packet) >= start + 4:  # header extension
        start += 4 + 4 * struct.unpack_from("!H", packet, start + 2)[0]
    end = len(packet) - (packet[-1] if packet[0] & 0x20 else 0)
    body = packet[start:end]
    return body[: len(body) // 2 * 2]


class Vad(enum.Enum):
    QUIET = "quiet"
    STARTED = "started"  # speech just began: stop the prompt (barge-in)
    SPEAKING = "speaking"
    PAUSED = "paused"  # quiet for `settle` after speech: maybe the end, guess what was said
    ENDED = "ended"  # the utterance is over: recognise it


@dataclass
class Segmenter:
    """Energy + spectral-flatness voice activity. Noise is loud but flat; speech is loud
    with a shaped spectrum, so hiss never barges in or counts as words."""

    end_silence: float = 0.3
    settle: float = 0.08  # longer than most gaps between words, shorter than any end
    max_speech: float = 15.0
    level_db: float = -40.0  # dBFS a frame must exceed to be sound at all
    flatness: float = 0.35  # below this (in the telephone band) a loud frame is speech
    start_frames: int = 3  # 60 ms of speech before it counts (a click does not)
    preroll: int = 15  # frames kept from before the start, so the first word is whole
    audio: list[bytes] = field(default_factory=list)
    speech_frames: int = 0
    sound_frames: int = 0
    _pending: bytes = b""
    _run: int = 0
    _quiet: int = 0
    _started: bool = False
    spoke_at: int = 0  # frames heard up to the last loud one: what a guess was made of

    def push(self, pcm: bytes) -> Vad:
        """Feed audio; the state after it (STARTED and ENDED are reported once)."""
        self._pending += pcm
        state = Vad.SPEAKING if self._started else Vad.QUIET
        while len(self._pending) >= FRAME * 2:
            frame, self._pending = self._pending[:FRAME * 2], self._pending[FRAME * 2:]
            got = self._frame(frame)
            if got in (Vad.STARTED, Vad.PAUSED, Vad.ENDED):
                state = got
            if got is Vad.ENDED:
                break
        return state

    def _frame(self, frame: bytes) -> Vad:
        self.audio.append(frame)
        loud, speech = classify(frame, self.level_db, self.flatness)
        if not self._started:
            self._run = self._run + 1 if speech else 0
            if self._run >= self.start_frames:
                self._started = True
                self.audio = self.audio[-(self.preroll + self.start_frames):]
                self.speech_frames = self.sound_frames = self._run
                self.spoke_at = len(self.audio)
                return Vad.STARTED
            del self.audio[:-(self.preroll + self.start_frames)]
            return Vad.QUIET
        self.sound_frames += loud
        self.speech_frames += speech
        self._quiet = 0 if loud else self._quiet + 1
        if loud:
            self.spoke_at = len(self.audio)
        if self._quiet * 0.02 >= self.end_silence or len(self.audio) * 0.02 >= self.max_speech:
            return Vad.ENDED
        return Vad.PAUSED if self._quiet == round(self.settle / 0.02) else Vad.SPEAKING

    @property
    def started(self) -> bool:
        return self._started

    @property
    def quiet(self) -> float:
        """Seconds of silence since the caller last made a sound."""
        return self._quiet * 0.02

    @property
    def paused(self) -> bool:
        return self._started and self._quiet >= round(self.settle / 0.02)

    @property
    def speech_like(self) -> bool:
        """Whether the utterance was mostly speech rather than noise."""
        return self.speech_frames >= 0.3 * max(self.sound_frames, 1)

    def pcm(self) -> bytes:
        return b"".join(self.audio)


_BAND: slice | None = None


def classify(frame: bytes, level_db: float, flatness: float) -> tuple[bool, bool]:
    """(loud, speech-like) for one 20 ms frame of 16 kHz PCM."""
    x = np.frombuffer(frame, "<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x))) + 1e-9
    if 20 * np.log10(rms / 32768) < level_db:
        return False, False
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2 + 1e-9
    band = power[6:76]  # 300-3800 Hz: the telephone band (call audio is 8 kHz at best)
    flat = float(np.exp(np.mean(np.log(band))) / np.mean(band))
    return True, flat < flatness
