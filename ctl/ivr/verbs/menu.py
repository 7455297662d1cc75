from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ctl.ivr.values import Value
from ctl.ivr.verbs.base import STEP, Args, Part, PromptSpec, Verb, prompt_parts

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    next: str = Field(pattern=STEP)
    set: dict[str, Any] = Field(default_factory=dict)  # e.g. {language: zh-CN}


class MenuArgs(Args):
    prompt: PromptSpec
    choices: dict[str, str | Choice]  # key (0-9, *, #) -> step, or {next, set}
    timeout: float = Field(5.0, gt=0)  # seconds to wait for a key after the prompt
    retries: int = Field(2, ge=0)  # prompts again this often on no input / a wrong key
    no_input: PromptSpec | None = None  # said before prompting again
    no_match: PromptSpec | None = None
    barge_in: bool = True

    @field_validator("choices")
    @classmethod
    def _keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if key not in "0123456789*#" or len(key) != 1:
                raise ValueError(f"choice {key!r} must be one key: 0-9, * or #")
        return v


class Menu(Verb):
    """A prompt, then one key picks the next step; retries on no input or a wrong key."""

    name = "menu"
    Args = MenuArgs
    outcomes = ("no_input", "no_match")
    waits_for_caller = True

    def __init__(self, args: MenuArgs) -> None:
        super().__init__(args)
        self.prompt = prompt_parts(args.prompt)
        self.no_input = prompt_parts(args.no_input)
        self.no_match = prompt_parts(args.no_match)
        self.sets = {k: {n: Value(v) for n, v in c.set.items()}
                     for k, c in args.choices.items() if isinstance(c, Choice)}

    def targets(self) -> dict[str, str]:
        return {k: c if isinstance(c, str) else c.next for k, c in self.args.choices.items()}

    def prompts(self) -> list[tuple[str, tuple[Part, ...]]]:
        return [("prompt", self.prompt), ("no_input", self.no_input),
                ("no_match", self.no_match)]

    async def run(self, ctx: Context) -> str | None:
        outcome = "no_input"
        for attempt in range(self.args.retries + 1):
            if attempt:
                again = self.no_input if outcome == "no_input" else self.no_match
                await ctx.caller.play(ctx.utter(again), barge_in=True)
            await ctx.caller.play(ctx.utter(self.prompt), barge_in=self.args.barge_in)
            key = await ctx.caller.digits(1, timeout=self.args.timeout)
            if key in self.args.choices:
                for name, value in self.sets.get(key, {}).items():
                    ctx.vars[name] = value(ctx.vars)
                return key
            outcome = "no_match" if key else "no_input"
        return outcome
