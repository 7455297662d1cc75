from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ctl.ivr.verbs.base import Args, Part, PromptSpec, Verb, prompt_parts

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class HangupArgs(Args):
    _short: ClassVar[str | None] = "prompt"
    prompt: PromptSpec | None = None  # a last word ("goodbye")


class Hangup(Verb):
    """End the call."""

    name = "hangup"
    Args = HangupArgs
    ends_call = True

    def __init__(self, args: HangupArgs) -> None:
        super().__init__(args)
        self.prompt = prompt_parts(args.prompt)

    def prompts(self) -> list[tuple[str, tuple[Part, ...]]]:
        return [("prompt", self.prompt)]

    async def run(self, ctx: Context) -> str | None:
        if self.prompt:
            await ctx.caller.play(ctx.utter(self.prompt), barge_in=False)
        await ctx.caller.hangup()
        return None
