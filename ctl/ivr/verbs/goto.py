from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, model_validator

from ctl.ivr.verbs.base import STEP, Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class GotoArgs(Args):
    _short: ClassVar[str | None] = "step"
    step: str | None = Field(None, pattern=STEP)
    flow: str | None = None  # another flow (at `step`, or its start), for good

    @model_validator(mode="after")
    def _somewhere(self) -> GotoArgs:
        if self.step is None and self.flow is None:
            raise ValueError("goto needs a step, a flow, or both")
        return self


class Goto(Verb):
    """Jump to a step, or to another flow."""

    name = "goto"
    Args = GotoArgs

    def targets(self) -> dict[str, str]:
        return {"goto": self.args.step} if self.args.step and not self.args.flow else {}

    def flows(self) -> list[str]:
        return [self.args.flow] if self.args.flow else []

    async def run(self, ctx: Context) -> str | None:
        if self.args.flow:
            ctx.jump = (self.args.flow, self.args.step)
            return None
        return "goto"
