"""The runner's Caller on a real call (ARI), and its Services in the controller."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from ctl.errors import CtlError, TelephonyError
from ctl.ivr import runner
from ctl.ivr.flow import Flow
from ctl.ivr.runner import Context, QueueRequest, Recognition, Say, Utterance
from ctl.ivr.validate import Known
from ctl.ivr.verbs.base import Speech
from ctl.ivr.verbs.listen import Listen
from ctl.routing.model import Requirement, Step
from ctl.settings import StepSettings
from ctl.telephony.calls import TRANSFER_LEG
from ctl.telephony.events import channel_of
from ctl.telephony.prompt import Part, Prompt
from ctl.telephony.queueing import Hold, VoiceQueues
from ctl.telephony.session import CallSession

Render = Callable[[Say], Awaitable[list[Part]]]  # text -> its parts' media URIs (TTS)


class LiveCaller:
    def __init__(self, call: CallSession, voice: VoiceQueues, render: Render | None,
                 recordings: Path, dial: str = "Local/{number}@public",
                 recognizer: Any = None) -> None:
        self.call, self.voice, self.render = call, voice, render
        self.recognizer = recognizer  # ctl.speech's Recognizer, when configured
        self.dial = dial  # how outside numbers are called ({number})
        self.number = call.info.caller_number
        self.contact_id = call.info.contact_id
        self.recordings = recordings
        self._keys: list[str] = []  # pressed and not yet read (type-ahead)

    async def answer(self) -> None:
        await self.call.answer()

    async def _media(self, items: Sequence[Utterance]) -> list[Part]:
        media: list[Part] = []
        for item in items:
            if isinstance(item, Say):
                media += await self.render(item) if self.render else []
            elif item.uri.startswith(("http://", "https://", "/")):
                media.append(f"sound:{item.uri}")
            else:
                media.append(item.uri)
        return media

    async def play(self, items: Sequence[Utterance], *, barge_in: bool) -> bool:
        if barge_in and self._keys:
            return True  # a key already pressed skips the prompt
        media = await self._media(items)
        if not media:
            return False
        prompt = Prompt(self.call, media)
        started = time.monotonic()
        await prompt.start()
        while not prompt.done:
            event = await self.call.next_event()
            if await prompt.finished(event):
                break
            if event["type"] == "ChannelDtmfReceived" and channel_of(event) == self.call.id:
                self._keys.append(str(event["digit"]))
                if barge_in and not prompt.stopped:
                    await prompt.stop()
        await self.call.log("prompt", {"media": prompt.media, "barged_in": prompt.stopped,
                                       "ms": round((time.monotonic() - started) * 1000)})
        return prompt.stopped

    async def digits(self, count: int, *, timeout: float, inter_digit: float = 3.0,
                     terminator: str = "") -> str:
        got = ""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < count:
            if self._keys:
                key = self._keys.pop(0)
            else:
                left = deadline - asyncio.get_running_loop().time()
                try:
                    event = await self.call.next_event(max(left, 0.0))
                except TimeoutError:
                    break
                if event["type"] != "ChannelDtmfReceived" or \
                        channel_of(event) != self.call.id:
                    continue
                key = str(event["digit"])
            if terminator and key == terminator:
                break
            got += key
            deadline = asyncio.get_running_loop().time() + inter_digit
        await self.call.log("keys", {"keys": got})
        return got

    async def listen(self, intents: Mapping[str, list[str]], *, language: str,
                     timeout: float, prompt: Sequence[Utterance]) -> Recognition | None:
        if self._keys:  # a key pressed earlier answers at once
            return Recognition("", None, 1.0, dtmf=self._keys.pop(0))
        if self.recognizer is None:  # no speech recognition configured: keys only
            await self.play(prompt, barge_in=True)
            key = await self.digits(1, timeout=timeout)
            return Recognition("", None, 1.0, dtmf=key) if key else None
        heard = await self.recognizer.listen(self.call, dict(intents), language=language,
                                             timeout=timeout,
                                             prompt=await self._media(prompt))
        if heard is None:
            await self.call.log("speech", {"heard": None})
            return None
        result = Recognition(heard.text, heard.intent, heard.confidence,
                             getattr(heard, "dtmf", ""))
        await self.call.log("speech", {"text": result.text, "intent": result.intent,
                                       "confidence": round(result.confidence, 3),
                                       "dtmf": result.dtmf})
        return result

    async def enqueue(self, request: QueueRequest) -> str:
        steps = None if request.steps is None else \
            tuple([await self._step(s) for s in request.steps])
        hold = Hold(request.announce, request.callback, request.music or "default")
        outcome = await self.voice.wait(self.call, request.queue or self._first_queue(),
                                        request.priority, steps, keep_caller=request.then,
                                        hold=hold)
        return {"overflowed": "overflow"}.get(outcome, outcome)

    async def _step(self, raw: dict[str, Any]) -> Step:
        agent = raw.get("agent")
        agent_id = await self.voice.agent_id(agent) if agent else None
        plain = StepSettings.model_validate({k: v for k, v in raw.items() if k != "agent"})
        return Step(Requirement.of(plain.skills, tuple(plain.languages), tuple(plain.tiers),
                                   agent_id), plain.expires_after)

    def _first_queue(self) -> str:
        return self.voice.routing.settings.queues[0].name

    async def transfer(self, kind: str, target: str, ring: int = 30) -> str:
        """Call `target` out and bridge the caller with it until the far end hangs up
        ("completed": the flow goes on) — or "failed" if it does not answer. The call
        stays under the controller: logged, and its contact closed like any other."""
        leg, bridge, bridged = uuid.uuid4().hex, uuid.uuid4().hex, False
        self.voice.legs[leg] = self.call  # its events come to this call's queue
        try:
            try:
                await self.call.ari.originate(self.dial.format(number=target),
                                              app_args=TRANSFER_LEG, channel_id=leg,
                                              caller_id=self.call.info.caller_number,
                                              timeout=ring,
                                              variables={"CTL_FLOW": TRANSFER_LEG})
            except TelephonyError as e:
                await self.call.log("call", {"action": "transfer_failed", "error": str(e)})
                return "failed"
            while True:
                event = await self.call.next_event()
                if channel_of(event) != leg:
                    continue
                if event["type"] == "StasisStart":
                    break
                if event["type"] in ("ChannelDestroyed", "ChannelHangupRequest"):
                    await self.call.log("call", {"action": "transfer_failed",
                                                 "cause": event.get("cause")})
                    return "failed"
            await self.call.ari.create_bridge(bridge)
            bridged = True
            await self.call.ari.add_to_bridge(bridge, self.call.id, leg)
            await self.call.log("call", {"action": "transferred_out", kind: target})
            while True:
                event = await self.call.next_event()
                if channel_of(event) == leg and event["type"] in ("StasisEnd",
                                                                  "ChannelDestroyed"):
                    return "completed"
        finally:
            self.voice.legs.pop(leg, None)
            with contextlib.suppress(CtlError):
                await self.call.ari.hangup(leg)
            if bridged:
                with contextlib.suppress(CtlError):
                    await self.call.ari.destroy_bridge(bridge)

    async def record(self, *, max_seconds: float, beep: bool) -> str | None:
        name = f"{self.contact_id or self.call.id}-voicemail-{int(time.time())}"
        await self.call.ari.record_channel(self.call.id, name, max_seconds=int(max_seconds),
                                           beep=beep)
        while True:
            event = await self.call.next_event()
            if event["type"] in ("RecordingFinished", "RecordingFailed") and \
                    event["recording"]["name"] == name:
                break
        duration = event["recording"].get("duration", 0) or 0
        if event["type"] == "RecordingFailed" or duration < 1:
            return None
        path = str(self.recordings / f"{name}.wav")
        await self.call.log("voicemail", {"recording": path, "seconds": duration})
        return path

    async def hangup(self) -> None:
        await self.call.hangup()

    async def log(self, kind: str, data: dict[str, Any]) -> None:
        await self.call.log(kind, data)


class LiveServices:
    """Flows' reach into the controller: each is a thin call into a service."""

    def __init__(self, services: Any, http: aiohttp.ClientSession) -> None:
        self.s, self._http = services, http

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def http(self, method: str, url: str, *, headers: Mapping[str, str], body: Any,
                   timeout: float) -> tuple[int, Any]:
        async with self._http.request(method, url, headers=dict(headers), json=body,
                                      timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            return r.status, await r.json(content_type=None)

    async def lookup_customer(self, kind: str, value: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.s.customers.describe(kind, value)
        return found

    async def queue_status(self, queue: str) -> dict[str, Any]:
        view = next((q for q in await self.s.core.queues() if q["name"] == queue), None)
        if view is None:
            return {"agents_available": 0, "waiting": 0, "expected_wait": None,
                    "longest_wait": 0}
        staffed = view["agents"]["staffed"]
        handle = view["average_handle"] or 0
        return {"agents_available": view["agents"]["available"], "waiting": view["waiting"],
                "longest_wait": round(view["oldest_wait"]),
                "expected_wait": round((view["waiting"] + 1) * handle / staffed)
                if staffed else None}

    async def create_ticket(self, fields: dict[str, Any]) -> dict[str, Any]:
        view = await self.s.tickets.create(**{k: v for k, v in fields.items() if v is not None})
        return {"id": view.id, "number": view.number}

    async def send_message(self, channel: str, to: str, text: str,
                           subject: str | None) -> str:
        sent: str = await self.s.outbound.send(channel, to, text, subject=subject)
        return sent


class Ivr:
    """The published flows of this controller, run on the calls that ask for them."""

    def __init__(self, services: Any) -> None:
        from ctl.ivr.registry import FlowRegistry

        self.s = services
        settings = services.settings
        self.registry = FlowRegistry(services.db, settings.flows_dir, self.known,
                                     watch_every=1.0 if settings.ivr.watch else None)
        self.recordings = settings.recordings_dir
        host = settings.http_host if settings.http_host not in ("0.0.0.0", "::") \
            else "127.0.0.1"
        self.base_vars = {"ctl_url": f"http://{host}:{settings.http_port}"}
        self._agent_skills: frozenset[str] = frozenset()
        self.registry.on_new = self.published
        self._http: aiohttp.ClientSession | None = None  # flows' http steps share it

    def known(self) -> Known:
        routing = self.s.settings.routing
        skills = frozenset(s for q in routing.queues for st in q.steps for s in st.skills) \
            | self._agent_skills
        return Known(queues=frozenset(q.name for q in routing.queues), skills=skills or None)

    async def published(self, flows: list[Flow]) -> None:
        """Flows became current: what callers say in them becomes text intent examples
        (ctl/speech/intent.py), their prompts are synthesized."""
        if self.s.settings.speech.insights:
            self.s.insights.use_flows(intent_phrases(self.registry.current.values()))
        await self.prerender(flows)

    async def prerender(self, flows: list[Flow]) -> None:
        """Synthesize every fixed text of newly published flows before a call needs it."""
        tts = getattr(self.s, "tts", None)
        if tts is None:
            return
        items = set()
        for flow in flows:
            for step in flow.steps.values():
                for _, parts in step.verb.prompts():
                    for part in parts:
                        if not isinstance(part, Speech):
                            continue
                        for lang, text in part.texts.items():
                            langs = (part.language,) if part.language else \
                                flow.languages if lang == "*" else (lang,)
                            items |= {(text.source, x, part.voice) for x in langs
                                      if text.static}
        await tts.prerender(sorted(items, key=str))

    async def start(self) -> None:
        from sqlalchemy import select

        from ctl.store.models import Agent

        async with self.s.db.session(readonly=True) as s:
            rows = (await s.scalars(select(Agent.skills))).all()
        self._agent_skills = frozenset(k for r in rows for k in (r or {}))
        self._http = aiohttp.ClientSession()
        await self.registry.start()

    async def stop(self) -> None:
        await self.registry.stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def resolve(self, name: str) -> Callable[[CallSession], Awaitable[None]] | None:
        flows = self.registry.snapshot()  # this call's versions, whatever is published later
        flow, http = flows.get(name), self._http
        if flow is None or http is None:
            return None

        async def run(call: CallSession) -> None:
            tts = getattr(self.s, "tts", None)
            render: Render | None = None
            if tts is not None:
                async def render(say: Say) -> list[Part]:
                    parts: list[Part] = tts.speak(say.text, say.language, say.voice)
                    return parts
            caller = LiveCaller(call, self.s.voice, render, self.recordings,
                                self.s.callbacks.dial, getattr(self.s, "recognizer", None))
            ctx = Context(flows, flow, caller, LiveServices(self.s, http), {
                **flow.vars, **self.base_vars, "language": flow.language,
                "caller": call.info.caller_number, "did": call.info.did})
            await caller.answer()
            try:
                await runner.run(ctx)
            finally:  # what the flow learnt, for the agent's 360 view and for reports
                with contextlib.suppress(Exception):
                    await caller.log("ivr_vars", _loggable(ctx.vars))

        return run


def _loggable(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The flow's variables as JSON, each at most ~2 kB (an HTTP answer can be large)."""
    out = {}
    for name, value in variables.items():
        text = json.dumps(value, default=str, ensure_ascii=False)
        out[name] = json.loads(text) if len(text) <= 2000 else text[:2000] + "..."
    return out


def intent_phrases(flows: Iterable[Flow]) -> dict[str, list[str]]:
    """Intent -> what callers say for it, over every `listen` step of the flows (menus
    take keys only: they name no intent)."""
    out: dict[str, list[str]] = {}
    for flow in sorted(flows, key=lambda f: f.name):
        for step in flow.steps.values():
            if isinstance(step.verb, Listen):
                for name, phrases in step.verb.all_phrases().items():
                    known = out.setdefault(name, [])
                    known.extend(p for p in phrases if p not in known)
    return out
