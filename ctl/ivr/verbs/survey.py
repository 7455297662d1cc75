from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from ctl.ivr.verbs.base import Args, Part, PromptSpec, Verb, prompt_parts

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class SurveyArgs(Args):
    prompt: PromptSpec  # "how satisfied were you, from 1 to 5?"
    scale: int = Field(5, ge=2, le=9)
    timeout: float = Field(6.0, gt=0)
    thanks: PromptSpec | None = None
    into: str = Field("csat", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Survey(Verb):
    """Post-call satisfaction: one key, 1..scale, kept in the contact's history."""

    name = "survey"
    Args = SurveyArgs
    outcomes = ("no_input",)
    waits_for_caller = True

    def __init__(self, args: SurveyArgs) -> None:
        super().__init__(args)
        self.prompt, self.thanks = prompt_parts(args.prompt), prompt_parts(args.thanks)

    def prompts(self) -> list[tuple[str, tuple[Part, ...]]]:
        return [("prompt", self.prompt), ("thanks", self.thanks)]

    async def run(self, ctx: Context) -> str | None:
        for _ in range(2):
            await ctx.caller.play(ctx.utter(self.prompt), barge_in=True)
            key = await ctx.caller.digits(1, timeout=self.args.timeout)
            if key.isdigit() and 1 <= int(key) <= self.args.scale:
                ctx.vars[self.args.into] = int(key)
                await ctx.caller.log("survey", {"csat": int(key), "scale": self.args.scale})
                await ctx.caller.play(ctx.utter(self.thanks), barge_in=False)
                return None
        return "no_input"
