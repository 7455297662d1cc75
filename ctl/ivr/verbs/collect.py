from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from ctl.ivr.expr import Expr
from ctl.ivr.verbs.base import Args, Part, PromptSpec, Verb, prompt_parts

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class CollectArgs(Args):
    prompt: PromptSpec
    into: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # the variable to set
    min_digits: int = Field(1, ge=1)
    max_digits: int = Field(20, ge=1, le=64)
    terminator: str = Field("#", pattern=r"^[#*]?$")
    timeout: float = Field(5.0, gt=0)  # for the first key
    inter_digit: float = Field(3.0, gt=0)
    pattern: str | None = None  # a regular expression the digits must match whole
    valid: str | None = None  # an expression over the variables, e.g. "order[0] != '0'"
    retries: int = Field(2, ge=0)
    invalid: PromptSpec | None = None  # said before asking again

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"pattern {v!r} is not a regular expression: {e}") from None
        return v


class Collect(Verb):
    """A string of keys (an order number...), checked; retries when it is not valid."""

    name = "collect"
    Args = CollectArgs
    outcomes = ("invalid", "no_input")
    waits_for_caller = True

    def __init__(self, args: CollectArgs) -> None:
        super().__init__(args)
        self.prompt, self.invalid = prompt_parts(args.prompt), prompt_parts(args.invalid)
        self.valid = Expr(args.valid) if args.valid else None
        self.pattern = re.compile(args.pattern) if args.pattern else None

    def prompts(self) -> list[tuple[str, tuple[Part, ...]]]:
        return [("prompt", self.prompt), ("invalid", self.invalid)]

    def expressions(self) -> list[Expr]:
        return [self.valid] if self.valid else []

    async def run(self, ctx: Context) -> str | None:
        a = self.args
        outcome = "no_input"
        for attempt in range(a.retries + 1):
            if attempt:
                await ctx.caller.play(ctx.utter(self.invalid), barge_in=True)
            await ctx.caller.play(ctx.utter(self.prompt), barge_in=True)
            digits = await ctx.caller.digits(a.max_digits, timeout=a.timeout,
                                             inter_digit=a.inter_digit, terminator=a.terminator)
            if not digits:
                outcome = "no_input"
                continue
            if self.ok(digits, ctx):
                ctx.vars[a.into] = digits
                return None
            outcome = "invalid"
        return outcome

    def ok(self, digits: str, ctx: Context) -> bool:
        if len(digits) < self.args.min_digits:
            return False
        if self.pattern and not self.pattern.fullmatch(digits):
            return False
        return not self.valid or bool(self.valid({**ctx.vars, self.args.into: digits}))
