"""`ctl flows simulate`: a flow run without a phone. A script gives the caller's keys and
words in order and what the world answers (HTTP, customers, queues); the same runner and
verbs as live calls run on it, and every prompt, step and variable is reported."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctl import yamlloc
from ctl.errors import ConfigError
from ctl.ivr.flow import Flow
from ctl.ivr.runner import Context, QueueRequest, Recognition, Say, Utterance, run
from ctl.speech.nlp import match_intent


class HttpAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: int = 200
    body: Any = None


class Script(BaseModel):
    """What happens in one simulated call."""

    model_config = ConfigDict(extra="forbid")

    flow: str | None = None  # default: the flow being simulated
    caller: str = "+15550100"
    now: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # One entry per time the flow waits for the caller: keys ("2", "12345#"), words
    # ("say: I want a refund"), or "" for silence.
    inputs: list[str] = Field(default_factory=list)
    http: dict[str, HttpAnswer] = Field(default_factory=dict)  # URL (prefix) -> answer
    customers: dict[str, dict[str, Any]] = Field(default_factory=dict)  # identity -> data
    queues: dict[str, dict[str, Any]] = Field(default_factory=dict)  # queue -> its status
    enqueue: str = "completed"  # what waiting in a queue ends with
    vars: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Result:
    path: list[str]  # "flow:step" entered, in order
    said: list[str]  # every prompt, as "[en] text" or "<media>"
    events: list[tuple[str, dict[str, Any]]]  # what the call logged
    vars: dict[str, Any]
    hung_up: bool
    unused_inputs: list[str] = field(default_factory=list)


class SimCaller:
    def __init__(self, script: Script) -> None:
        self.number = script.caller
        self.contact_id: str | None = None
        self.script = script
        self.inputs = list(script.inputs)
        self.said: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.hung_up = False

    def _next(self) -> str:
        return self.inputs.pop(0) if self.inputs else ""

    async def answer(self) -> None:
        pass

    async def play(self, items: Sequence[Utterance], *, barge_in: bool) -> bool:
        for item in items:
            self.said.append(f"[{item.language}] {item.text}" if isinstance(item, Say)
                             else f"<{item.uri}>")
        return False

    async def digits(self, count: int, *, timeout: float, inter_digit: float = 3.0,
                     terminator: str = "") -> str:
        got = self._next()
        if got.startswith("say:"):
            return ""  # words where keys were expected: nothing a keypad hears
        if terminator and terminator in got:
            got = got[:got.index(terminator)]
        return got[:count]

    async def listen(self, intents: Mapping[str, list[str]], *, language: str,
                     timeout: float, prompt: Sequence[Utterance]) -> Recognition | None:
        await self.play(prompt, barge_in=True)
        got = self._next()
        if not got:
            return None
        if not got.startswith("say:"):
            return Recognition("", None, 1.0, dtmf=got[:1])
        text = got[4:].strip()
        intent, confidence = match_intent(text, dict(intents))
        return Recognition(text, intent, confidence)

    async def enqueue(self, request: QueueRequest) -> str:
        self.events.append(("enqueued", {"queue": request.queue, "priority": request.priority,
                                         "steps": request.steps}))
        return self.script.enqueue

    async def transfer(self, kind: str, target: str) -> str:
        self.events.append(("transferred", {kind: target}))
        self.hung_up = True
        return "completed"

    async def record(self, *, max_seconds: float, beep: bool) -> str | None:
        got = self._next()
        return None if not got else f"/simulated/voicemail-{len(self.events)}.wav"

    async def hangup(self) -> None:
        self.hung_up = True

    async def log(self, kind: str, data: dict[str, Any]) -> None:
        if kind not in ("ivr", "ivr_left"):
            self.events.append((kind, data))


class SimServices:
    def __init__(self, script: Script, caller: SimCaller) -> None:
        self.script, self.caller = script, caller

    def now(self) -> datetime:
        return self.script.now

    async def http(self, method: str, url: str, *, headers: Mapping[str, str], body: Any,
                   timeout: float) -> tuple[int, Any]:
        for prefix, answer in self.script.http.items():
            if url.startswith(prefix):
                return answer.status, answer.body
        async with aiohttp.ClientSession() as s, s.request(
                method, url, headers=dict(headers), json=body,
                timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            return r.status, await r.json(content_type=None)

    async def lookup_customer(self, kind: str, value: str) -> dict[str, Any] | None:
        return self.script.customers.get(value)

    async def queue_status(self, queue: str) -> dict[str, Any]:
        return {"agents_available": 1, "waiting": 0, "expected_wait": 0, "longest_wait": 0,
                **self.script.queues.get(queue, {})}

    async def create_ticket(self, fields: dict[str, Any]) -> dict[str, Any]:
        self.caller.events.append(("ticket", fields))
        return {"id": "sim", "number": "T-SIM-1"}

    async def send_message(self, channel: str, to: str, text: str,
                           subject: str | None) -> str:
        self.caller.events.append(("message", {"channel": channel, "to": to, "text": text}))
        return "sim"


async def simulate(flows: Mapping[str, Flow], name: str, script: Script) -> Result:
    caller = SimCaller(script)
    flow = flows[script.flow or name]
    ctx = Context(flows, flow, caller, SimServices(script, caller),
                  {**flow.vars, "caller": script.caller, "language": flow.language,
                   **script.vars})
    await run(ctx)
    return Result(ctx.path, caller.said, caller.events, ctx.vars,
                  caller.hung_up, caller.inputs)


def coverage(flows: Mapping[str, Flow], results: Sequence[Result]
             ) -> dict[str, tuple[int, int, list[str]]]:
    """Per flow: (steps entered, steps, steps never entered)."""
    entered = {p for r in results for p in r.path}
    out = {}
    for name, flow in flows.items():
        missing = [s for s in flow.steps if f"{name}:{s}" not in entered]
        out[name] = (len(flow.steps) - len(missing), len(flow.steps), missing)
    return out


def load_script(path: Path) -> Script:
    doc = yamlloc.load(path)
    try:
        return Script.model_validate(doc.data or {})
    except ValidationError as e:
        lines = [f"{doc.where([str(p) for p in err['loc']])}: {err['msg']}"
                 for err in e.errors()]
        raise ConfigError("invalid simulation script:\n  " + "\n  ".join(lines)) from None
