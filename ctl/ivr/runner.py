"""Running a flow for one call: a small explicit state (flow, step, variables), verbs
awaited one at a time (cancelling the task cancels the verb), every step logged.

The runner only knows two protocols: `Caller` (the call: prompts, keys, speech, queue,
recording) and `Services` (everything else a flow reaches: HTTP, customers, queues,
tickets, messages, the clock). The live call and `ctl flows simulate` each implement
both, so the simulator runs exactly the code callers meet."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ctl.errors import CtlError
from ctl.ivr.flow import Flow, Step
from ctl.ivr.verbs.base import Media, Part, Speech

MAX_STEPS = 10_000  # a flow that validation let through still cannot spin for ever


@dataclass(frozen=True)
class Say:
    text: str
    language: str
    voice: str | None = None


@dataclass(frozen=True)
class Play:
    uri: str


Utterance = Say | Play


@dataclass
class Recognition:
    text: str
    intent: str | None
    confidence: float
    dtmf: str = ""


@dataclass(frozen=True)
class QueueRequest:
    queue: str
    priority: int = 0
    steps: tuple[dict[str, Any], ...] | None = None  # routing steps as in the settings
    announce: bool = True
    callback: bool | None = None  # None: the queue's setting
    music: str | None = None
    then: bool = False  # the flow goes on after the agent (the caller stays on the line)


class Caller(Protocol):
    """The call the flow runs on."""

    number: str  # the caller's number (E.164 when it could be read)
    contact_id: str | None

    async def answer(self) -> None: ...
    async def play(self, items: Sequence[Utterance], *, barge_in: bool) -> bool:
        """Play to the end, or until a key if `barge_in`; True if a key stopped it (the
        key stays buffered for the next digits())."""
    async def digits(self, count: int, *, timeout: float, inter_digit: float = 3.0,
                     terminator: str = "") -> str:
        """Up to `count` keys (typed-ahead keys first); "" if none came in `timeout`."""
    async def listen(self, intents: Mapping[str, list[str]], *, language: str,
                     timeout: float, prompt: Sequence[Utterance]) -> Recognition | None: ...
    async def enqueue(self, request: QueueRequest) -> str:
        """Wait in a queue: "completed" (served), "callback", or "overflow"."""
    async def transfer(self, kind: str, target: str) -> str:
        """Blind transfer to a number ("completed" once it left, or "failed")."""
    async def record(self, *, max_seconds: float, beep: bool) -> str | None:
        """A voicemail: the file's path, or None if the caller said nothing."""
    async def hangup(self) -> None: ...
    async def log(self, kind: str, data: dict[str, Any]) -> None: ...


class Services(Protocol):
    """What flows reach besides the call."""

    def now(self) -> datetime: ...
    async def http(self, method: str, url: str, *, headers: Mapping[str, str],
                   body: Any, timeout: float) -> tuple[int, Any]: ...
    async def lookup_customer(self, kind: str, value: str) -> dict[str, Any] | None: ...
    async def queue_status(self, queue: str) -> dict[str, Any]: ...
    async def create_ticket(self, fields: dict[str, Any]) -> dict[str, Any]: ...
    async def send_message(self, channel: str, to: str, text: str,
                           subject: str | None) -> str: ...


class FlowError(CtlError):
    """A flow that cannot go on (an unknown flow at run time, a runaway loop)."""

    status = 500
    code = "flow_error"


@dataclass
class Context:
    """The state of one run: where it is and what it knows."""

    flows: Mapping[str, Flow]  # the versions this call started with
    flow: Flow
    caller: Caller
    services: Services
    vars: dict[str, Any] = field(default_factory=dict)
    jump: tuple[str, str | None] | None = None  # set by goto to another flow
    ended: bool = False  # a hangup, in this flow or a subflow
    step: Step | None = None  # the step running now
    path: list[str] = field(default_factory=list)  # "flow:step" entered, in order

    @property
    def language(self) -> str:
        return str(self.vars.get("language") or self.flow.language)

    def utter(self, parts: Sequence[Part]) -> list[Utterance]:
        out: list[Utterance] = []
        for part in parts:
            if isinstance(part, Media):
                out.append(Play(part.uri.render(self.vars)))
            elif isinstance(part, Speech):
                lang = part.language or self.language
                text = part.texts.get(lang) or part.texts.get("*") or \
                    next(iter(part.texts.values()))
                out.append(Say(text.render(self.vars), lang, part.voice))
        return out


async def run(ctx: Context, start: str | None = None) -> None:
    """Run `ctx.flow` from `start` (its start step) until a step has nowhere to go."""
    step_name: str | None = start or ctx.flow.start
    for _ in range(MAX_STEPS):
        if step_name is None:
            return
        step = ctx.step = ctx.flow.steps[step_name]
        ctx.path.append(f"{ctx.flow.name}:{step.name}")
        await ctx.caller.log("ivr", {"flow": ctx.flow.name, "version": ctx.flow.version,
                                     "step": step.name, "verb": step.verb.name})
        started = time.monotonic()
        outcome = await step.verb.run(ctx)
        await ctx.caller.log("ivr_left", {"step": step.name, "outcome": outcome,
                                          "ms": round((time.monotonic() - started) * 1000)})
        if step.verb.ends_call or ctx.ended:
            ctx.ended = True
            return
        if ctx.jump is not None:
            flow_name, step_name = ctx.jump
            ctx.jump = None
            ctx.flow = _flow(ctx, flow_name)
            step_name = step_name or ctx.flow.start
            continue
        step_name = step.after(outcome)
    raise FlowError(f"flow {ctx.flow.name}: more than {MAX_STEPS} steps in one call")


async def run_subflow(ctx: Context, name: str) -> None:
    """Run another flow to its end, then come back (variables are shared)."""
    outer = ctx.flow
    ctx.flow = _flow(ctx, name)
    try:
        await run(ctx)
    finally:
        ctx.flow = outer


def _flow(ctx: Context, name: str) -> Flow:
    flow = ctx.flows.get(name)
    if flow is None:
        raise FlowError(f"flow {ctx.flow.name}: no flow named {name!r} is published")
    return flow
