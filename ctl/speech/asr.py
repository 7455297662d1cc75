"""Speech on live calls: the caller's audio is tapped (snoop -> bridge -> external media ->
RTP to us), a prompt plays until the caller speaks or presses a key (barge-in), and what
was said is recognised against the flow's phrases and matched to an intent.

The tap's channels live in their own ARI application (`<app>-speech`) that this module
reads itself, so the call manager never mistakes them for calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ctl.errors import NotFound, TelephonyError
from ctl.speech.audio import RtpReceiver, Segmenter, Vad
from ctl.speech.decoders import decode_in_worker
from ctl.speech.nlp import match_intent
from ctl.telephony.ari import AriClient
from ctl.telephony.events import Event, EventStream

if TYPE_CHECKING:
    from ctl.telephony.session import CallSession

log = logging.getLogger(__name__)


@dataclass
class Recognition:
    text: str
    intent: str | None
    confidence: float
    dtmf: str = ""
    latency_ms: float = 0.0  # end of speech -> result


@dataclass
class Listening:
    """One listen's moving parts: the prompt playing, the audio heard so far."""

    call: CallSession
    playback: str | None
    deadline: float | None
    vad: Segmenter
    held: list[Event]


class Recognizer:
    def __init__(self, ari: AriClient, vosk_models: Mapping[str, Path] | None = None,
                 end_silence: float = 0.3, workers: int = 2) -> None:
        self.ari = ari  # its own app: the tap's channels enter Stasis there
        self.vosk_models = dict(vosk_models or {})
        self.end_silence = end_silence
        self._stream = EventStream(ari, self._on_stasis)
        self._arrivals: dict[str, asyncio.Future[None]] = {}
        self._started = False
        # NOTE: decoders hold the GIL for their whole run (~70 ms an utterance): in
        # threads they would stall every call's events. Worker processes (spawned: the
        # controller has threads, fork would copy their locks) use both cores instead.
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(
            "spawn"))
        self.stats = {"recognitions": 0, "barge_ins": 0}

    async def listen(self, call: CallSession, intents: dict[str, list[str]], *,
                     language: str = "en", timeout: float = 5.0,
                     prompt: list[str] | None = None) -> Recognition | None:
        """Play `prompt` (media URIs; stopped as soon as the caller speaks or presses a
        key: barge-in), then recognise until end of speech or timeout. A key pressed
        returns Recognition(text="", intent=None, confidence=1.0, dtmf=digit). None:
        nothing said."""
        async with self._tap(call.id) as audio:
            playback = None
            if prompt:
                playback = uuid.uuid4().hex
                await call.ari.play(call.id, prompt, playback)
            state = Listening(call, playback, None if playback else time.monotonic() + timeout,
                              Segmenter(end_silence=self.end_silence), [])
            try:
                return await self._hear(state, audio, intents, language, timeout)
            finally:
                for event in state.held:
                    call.stash(event)
                await self._stop_prompt(state)

    async def _hear(self, st: Listening, audio: asyncio.Queue[bytes],
                    intents: dict[str, list[str]], language: str, timeout: float
                    ) -> Recognition | None:
        events = asyncio.create_task(st.call.next_event())
        chunks = asyncio.create_task(audio.get())
        try:
            while True:
                wait = None if st.deadline is None else max(0.0, st.deadline - time.monotonic())
                done, _ = await asyncio.wait({events, chunks}, timeout=wait,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    return None  # the caller said nothing in time: no input
                if events in done:
                    event = events.result()  # Hangup propagates
                    found = self._on_event(st, event, timeout)
                    if found is not None:
                        return found
                    events = asyncio.create_task(st.call.next_event())
                if chunks in done:
                    vad = st.vad.push(chunks.result())
                    if vad is Vad.STARTED:
                        st.deadline = None  # speaking: wait for the end of it
                        self.stats["barge_ins"] += st.playback is not None
                        await self._stop_prompt(st)
                    elif vad is Vad.ENDED:
                        return await self._recognise(st.vad, intents, language)
                    chunks = asyncio.create_task(audio.get())
        finally:
            for task in (events, chunks):
                task.cancel()

    def _on_event(self, st: Listening, event: Event, timeout: float) -> Recognition | None:
        kind = event["type"]
        if kind == "ChannelDtmfReceived" and event["channel"]["id"] == st.call.id:
            return Recognition("", None, 1.0, dtmf=str(event["digit"]))
        if kind == "PlaybackFinished" and event["playback"]["id"] == st.playback:
            st.playback = None
            if st.deadline is None and not st.vad.started:
                st.deadline = time.monotonic() + timeout  # the caller's turn starts now
        elif not kind.startswith("Playback"):
            st.held.append(event)  # for whatever the flow waits on next
        return None

    async def _stop_prompt(self, st: Listening) -> None:
        playback, st.playback = st.playback, None
        if playback is not None:
            with contextlib.suppress(NotFound, TelephonyError):
                await st.call.ari.stop_playback(playback)
            if st.deadline is None and not st.vad.started:
                st.deadline = time.monotonic()

    async def _recognise(self, vad: Segmenter, intents: dict[str, list[str]],
                         language: str) -> Recognition:
        ended = time.monotonic() - self.end_silence
        self.stats["recognitions"] += 1
        if not vad.speech_like:  # noise: heard, but nothing to match
            return Recognition("", None, 0.0, latency_ms=(time.monotonic() - ended) * 1000)
        text = await self.transcribe(vad.pcm(), intents, language)
        intent, confidence = match_intent(text, intents)
        return Recognition(text, intent, confidence,
                           latency_ms=round((time.monotonic() - ended) * 1000, 1))

    async def transcribe(self, pcm: bytes, intents: Mapping[str, list[str]],
                         language: str = "en") -> str:
        """What `pcm` (16 kHz mono) says, restricted to the phrases of `intents`."""
        lang = language.lower().split("-")[0]
        model = self.vosk_models.get(lang)
        name = str(model) if model is not None else "pocketsphinx" if lang == "en" else None
        if name is None:
            log.warning("no recogniser for language %r: configure speech.vosk_models", lang)
            return ""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, decode_in_worker, name, pcm,
                                          dict(intents))

    async def warm(self) -> None:
        """Load the models in the workers before the first caller waits on them."""
        await asyncio.gather(*(self.transcribe(b"\0" * 3200, {"x": ["hello"]}, lang)
                               for lang in ["en", *self.vosk_models]))

    def _on_stasis(self, event: Event) -> None:
        if event["type"] == "StasisStart":
            waiter = self._arrivals.pop(event["channel"]["id"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    @contextlib.asynccontextmanager
    async def _tap(self, channel_id: str) -> AsyncIterator[asyncio.Queue[bytes]]:
        """The caller's voice (not the prompt) as 16 kHz PCM chunks, while inside. If the
        tap cannot be set up, a queue that stays empty: the caller can still press keys."""
        rx = await RtpReceiver.open()
        tag = uuid.uuid4().hex[:12]
        snoop, media, bridge = f"snoop-{tag}", f"media-{tag}", f"speech-{tag}"
        loop = asyncio.get_running_loop()
        # NOTE: a channel joins a bridge only once in Stasis, which its StasisStart tells.
        arrived = [self._arrivals.setdefault(c, loop.create_future()) for c in (snoop, media)]
        try:
            try:
                await self._ready()
                await self.ari.request("POST", f"/channels/{channel_id}/snoop", spy="in",
                                       app=self.ari.app, snoopId=snoop)
                await self.ari.request("POST", "/channels/externalMedia", app=self.ari.app,
                                       channelId=media, external_host=f"127.0.0.1:{rx.port}",
                                       format="slin16")
                await self.ari.create_bridge(bridge)
                await asyncio.wait_for(asyncio.gather(*arrived), 5)
                await self.ari.add_to_bridge(bridge, snoop, media)
            except (TelephonyError, NotFound, TimeoutError) as e:
                log.warning("no speech tap on %s (keys only): %s", channel_id, e)
                yield asyncio.Queue()
                return
            yield rx.queue
        finally:
            rx.close()
            for c in (snoop, media):
                self._arrivals.pop(c, None)
            for channel in (snoop, media):
                with contextlib.suppress(NotFound, TelephonyError):
                    await self.ari.hangup(channel)
            with contextlib.suppress(NotFound, TelephonyError):
                await self.ari.destroy_bridge(bridge)

    async def _ready(self) -> None:
        if not self._started:
            self._started = True
            self._stream.start()
        await asyncio.wait_for(self._stream.connected.wait(), 3)

    async def close(self) -> None:
        await self._stream.stop()
        await self.ari.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
