from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ctl.ivr.verbs.base import Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class SubflowArgs(Args):
    _short: ClassVar[str | None] = "flow"
    flow: str


class Subflow(Verb):
    """Run another flow (shared variables), then go on with this step's next."""

    name = "subflow"
    Args = SubflowArgs

    def flows(self) -> list[str]:
        return [self.args.flow]

    async def run(self, ctx: Context) -> str | None:
        from ctl.ivr.runner import run_subflow

        await run_subflow(ctx, self.args.flow)
        return None
