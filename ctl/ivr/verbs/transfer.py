from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from ctl.ivr.values import Value
from ctl.ivr.verbs.base import Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class TransferArgs(Args):
    queue: str | None = None  # wait for any agent of this queue
    agent: str | None = None  # this agent (username), in `queue` (default: the first queue)
    number: str | None = None  # an outside number (E.164, through the first trunk)
    wait: float = Field(60.0, gt=0)  # for `agent`: how long before the queue's agents

    @model_validator(mode="after")
    def _one(self) -> TransferArgs:
        if sum(x is not None for x in (self.number, self.queue or self.agent)) != 1:
            raise ValueError("transfer to one of: queue (and/or agent), or number")
        return self


class Transfer(Verb):
    """Hand the call to a queue, a named agent, or an outside number."""

    name = "transfer"
    Args = TransferArgs
    outcomes = ("completed", "failed", "overflow", "callback")
    waits_for_caller = True

    def __init__(self, args: TransferArgs) -> None:
        super().__init__(args)
        self.number = Value(args.number) if args.number else None

    async def run(self, ctx: Context) -> str | None:
        from ctl.ivr.runner import QueueRequest

        if self.number is not None:
            return await ctx.caller.transfer("number", str(self.number(ctx.vars)))
        queue = self.args.queue or ""  # "": the first queue of the settings
        steps: tuple[dict[str, Any], ...] | None = None
        if self.args.agent:
            steps = ({"agent": self.args.agent, "expires_after": self.args.wait}, {})
        return await ctx.caller.enqueue(QueueRequest(queue, 0, steps))
