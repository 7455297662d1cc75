"""Speech on live calls: the caller's audio is tapped (snoop -> bridge -> external media ->
RTP to us), a prompt plays until the caller speaks or presses a key (barge-in), and what
was said is recognised against the flow's phrases and matched to an intent.

The tap's channels live in their own ARI application (`<app>-speech`) that this module
reads itself, so the call manager never mistakes them for calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ctl.errors import NotFound, TelephonyError
from ctl.speech.audio import RtpReceiver, Segmenter, Vad
from ctl.speech.decoders import complete, decode_in_worker, grammar_phrases, has_phrase
from ctl.speech.nlp import match_intent
from ctl.speech.worker import spawn_pool
from ctl.telephony.ari import AriClient
from ctl.telephony.events import Event, EventStream
from ctl.telephony.prompt import Part, Prompt

if TYPE_CHECKING:
    from ctl.telephony.session import CallSession

log = logging.getLogger(__name__)
# Silence that ends an utterance whose words complete a phrase (and can begin no longer
# one): what a caller who has said all the grammar can use is not waited on any longer.
COMPLETE_SILENCE = 0.2


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
    prompt: Prompt | None
    deadline: float | None
    heard: Utterance
    held: list[Event]


class Utterance:
    """What one caller says, as it arrives: where it starts and ends, and what it was.

    At each pause (80 ms) the words so far are decoded (the first, quick pass) while the
    caller may still go on. When those words complete a phrase of the grammar, 200 ms of
    silence ends the utterance (`complete()`: no longer phrase can follow them); otherwise
    `end_silence` does. Either way the guess made at the pause is the result when it
    found a phrase, so the decoding is done by the time the silence has been waited out."""

    def __init__(self, rec: Recognizer, intents: dict[str, list[str]], language: str
                 ) -> None:
        self.rec, self.intents, self.language = rec, intents, language
        self.vad = Segmenter(end_silence=rec.end_silence)
        self._guess: asyncio.Future[str] | None = None
        self._guess_at = -1  # the frames it was made of (vad.spoke_at then)

    def push(self, pcm: bytes) -> Vad:
        """The state after `pcm`; ENDED also when the guess completes a phrase."""
        state = self.vad.push(pcm)
        if state is Vad.PAUSED and self.vad.paused:
            self.close()
            self._guess_at = self.vad.spoke_at
            self._guess = asyncio.ensure_future(self.rec.transcribe(
                self.vad.pcm(), self.intents, self.language, quick=True))
        elif state is not Vad.ENDED and self.vad.quiet >= min(COMPLETE_SILENCE,
                                                               self.rec.end_silence):
            guess = self._guessed()
            if guess is not None and complete(guess, self.intents):
                return Vad.ENDED
        return state

    @property
    def guess(self) -> asyncio.Future[str] | None:
        """The decoding of the words before the latest pause, while it runs or is valid."""
        return self._guess if self._guess_at == self.vad.spoke_at else None

    def _guessed(self) -> str | None:
        """The guess of the words heard up to now, if it is made."""
        guess = self._guess
        if guess is None or not guess.done() or guess.cancelled() or \
                guess.exception() is not None or self._guess_at != self.vad.spoke_at:
            return None
        return guess.result()

    async def result(self) -> Recognition:
        ended = time.monotonic() - self.vad.quiet  # when the caller stopped
        if not self.vad.speech_like:  # noise: heard, but nothing to match
            return Recognition("", None, 0.0, latency_ms=(time.monotonic() - ended) * 1000)
        text = None
        if self._guess is not None and self._guess_at == self.vad.spoke_at:
            with contextlib.suppress(Exception):
                text = await self._guess
            if text is not None and not has_phrase(text, grammar_phrases(self.intents)):
                text = None  # the second pass has more to try
        if text is None:
            text = await self.rec.transcribe(self.vad.pcm(), self.intents, self.language)
        intent, confidence = match_intent(text, self.intents)
        return Recognition(text, intent, confidence,
                           latency_ms=round((time.monotonic() - ended) * 1000, 1))

    def close(self) -> None:
        if self._guess is not None and not self._guess.done():
            self._guess.cancel()  # a queued guess never runs; a running one is let be


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
        self._pool = spawn_pool(workers)
        self.stats = {"recognitions": 0, "barge_ins": 0}

    async def listen(self, call: CallSession, intents: dict[str, list[str]], *,
                     language: str = "en", timeout: float = 5.0,
                     prompt: Sequence[Part] | None = None) -> Recognition | None:
        """Play `prompt` (media URIs, or futures of those being synthesized; stopped as
        soon as the caller speaks or presses a key: barge-in), then recognise until end of
        speech or timeout. A key pressed returns Recognition(text="", intent=None,
        confidence=1.0, dtmf=digit). None: nothing said."""
        async with self._tap(call.id) as audio:
            playing = None
            if prompt:
                playing = Prompt(call, prompt)
                await playing.start()
            state = Listening(call, playing, None if playing else time.monotonic() + timeout,
                              Utterance(self, intents, language), [])
            try:
                return await self._hear(state, audio, timeout)
            finally:
                state.heard.close()
                for event in state.held:
                    call.stash(event)
                await self._stop_prompt(state)

    async def _hear(self, st: Listening, audio: asyncio.Queue[bytes], timeout: float
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
                    found = await self._on_event(st, event, timeout)
                    if found is not None:
                        return found
                    events = asyncio.create_task(st.call.next_event())
                if chunks in done:
                    vad = st.heard.push(chunks.result())
                    if vad is Vad.STARTED:
                        st.deadline = None  # speaking: wait for the end of it
                        self.stats["barge_ins"] += st.prompt is not None
                        await self._stop_prompt(st)
                    elif vad is Vad.ENDED:
                        self.stats["recognitions"] += 1
                        return await st.heard.result()
                    chunks = asyncio.create_task(audio.get())
        finally:
            for task in (events, chunks):
                task.cancel()

    async def _on_event(self, st: Listening, event: Event, timeout: float
                        ) -> Recognition | None:
        kind = event["type"]
        if kind == "ChannelDtmfReceived" and event["channel"]["id"] == st.call.id:
            return Recognition("", None, 1.0, dtmf=str(event["digit"]))
        if st.prompt is not None and await st.prompt.finished(event):
            st.prompt = None
            if st.deadline is None and not st.heard.vad.started:
                st.deadline = time.monotonic() + timeout  # the caller's turn starts now
        elif not kind.startswith(("Playback", "CtlPrompt")):
            st.held.append(event)  # for whatever the flow waits on next
        return None

    async def _stop_prompt(self, st: Listening) -> None:
        prompt, st.prompt = st.prompt, None
        if prompt is not None:
            await prompt.stop()
            if st.deadline is None and not st.heard.vad.started:
                st.deadline = time.monotonic()

    async def transcribe(self, pcm: bytes, intents: Mapping[str, list[str]],
                         language: str = "en", quick: bool = False) -> str:
        """What `pcm` (16 kHz mono) says, restricted to the phrases of `intents`
        (`quick`: the decoder's first pass only, see Decoder.decode)."""
        lang = language.lower().split("-")[0]
        model = self.vosk_models.get(lang)
        name = str(model) if model is not None else "pocketsphinx" if lang == "en" else None
        if name is None:
            log.warning("no recogniser for language %r: configure speech.vosk_models", lang)
            return ""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, decode_in_worker, name, pcm,
                                          dict(intents), quick)

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
                # Both create channels: over HTTP, like AriClient.originate (see request).
                await self.ari.request("POST", f"/channels/{channel_id}/snoop", http=True,
                                       spy="in", app=self.ari.app, snoopId=snoop)
                await self.ari.request("POST", "/channels/externalMedia", http=True,
                                       app=self.ari.app,
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
