from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ctl.ivr.expr import Expr
from ctl.ivr.values import Value
from ctl.ivr.verbs.base import Args, Verb
from ctl.settings import StepSettings

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class EnqueueArgs(Args):
    _short: ClassVar[str | None] = "queue"
    queue: str
    priority: int | str = 0  # or "= expression", e.g. "= 10 if customer.tier == 'vip' else 0"
    # Routing criteria, relaxed step by step (as a queue's steps in the settings); a step's
    # languages may be "{{ language }}". Default: the queue's own steps.
    steps: list[dict[str, Any]] | None = None
    announce: bool = True  # position and expected wait, every routing.announce_every
    callback: bool | None = None  # offer "press 1 to be called back" (default: the queue's)
    music: str | None = None  # a music-on-hold class (default: Asterisk's default)


class Enqueue(Verb):
    """Wait for an agent: hold music and announcements, a callback offer; `overflow` when
    the queue gives up on the caller (its max wait or length), `callback` when the caller
    chose to be called back, `completed` after the agent."""

    name = "enqueue"
    Args = EnqueueArgs
    outcomes = ("completed", "overflow", "callback")
    waits_for_caller = True

    def __init__(self, args: EnqueueArgs) -> None:
        super().__init__(args)
        self.priority = Value(args.priority)
        self.steps = Value(args.steps) if args.steps is not None else None
        for i, step in enumerate(args.steps or []):
            try:  # the same schema as a queue's steps in the settings
                StepSettings.model_validate({k: v for k, v in step.items()
                                             if k != "languages"})
            except ValueError as e:
                raise ValueError(f"steps[{i}]: {e}") from None

    def expressions(self) -> list[Expr]:
        return self.priority.expressions() + (self.steps.expressions() if self.steps else [])

    async def run(self, ctx: Context) -> str | None:
        from ctl.ivr.runner import QueueRequest

        steps = None
        if self.steps is not None:
            steps = tuple({**s, "languages": [x for x in s.get("languages", []) if x]}
                          for s in self.steps(ctx.vars))
        then = ctx.step is not None and ctx.step.after("completed") is not None
        request = QueueRequest(self.args.queue, int(self.priority(ctx.vars) or 0), steps,
                               self.args.announce, self.args.callback, self.args.music, then)
        return await ctx.caller.enqueue(request)
