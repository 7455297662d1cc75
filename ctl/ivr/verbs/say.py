from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ctl.ivr.verbs.base import Args, Part, PromptSpec, Verb, prompt_parts

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class SayArgs(Args):
    _short: ClassVar[str | None] = "text"
    text: PromptSpec
    voice: str | None = None
    barge_in: bool = True  # a key stops the prompt (and is kept for the next menu)


class Say(Verb):
    """Speak text (synthesized offline), in the caller's language."""

    name = "say"
    Args = SayArgs

    def __init__(self, args: SayArgs) -> None:
        super().__init__(args)
        self.parts = prompt_parts(args.text, args.voice)

    def prompts(self) -> list[tuple[str, tuple[Part, ...]]]:
        return [("text", self.parts)]

    async def run(self, ctx: Context) -> str | None:
        await ctx.caller.play(ctx.utter(self.parts), barge_in=self.args.barge_in)
        return None
