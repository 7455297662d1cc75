from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ctl.ivr.verbs.base import STEP, Args, Part, PromptSpec, Verb, prompt_parts

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class Intent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phrases: list[str] | dict[str, list[str]]  # what callers say (per language)
    dtmf: str | None = Field(None, pattern=r"^[0-9*#]$")  # the key that means the same
    next: str = Field(pattern=STEP)


class ListenArgs(Args):
    prompt: PromptSpec
    intents: dict[str, Intent]
    timeout: float = Field(5.0, gt=0)  # seconds of silence before "no_input"
    retries: int = Field(2, ge=0)
    min_confidence: float = Field(0.5, ge=0, le=1)  # below: heard but not understood
    no_input: PromptSpec | None = None
    no_match: PromptSpec | None = None
    into: str = Field("speech", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Listen(Verb):
    """The caller says what they need (or presses the intent's key): an intent -> a step."""

    name = "listen"
    Args = ListenArgs
    outcomes = ("no_input", "no_match")
    waits_for_caller = True

    def __init__(self, args: ListenArgs) -> None:
        super().__init__(args)
        self.prompt = prompt_parts(args.prompt)
        self.no_input, self.no_match = prompt_parts(args.no_input), prompt_parts(args.no_match)
        self.keys = {i.dtmf: name for name, i in args.intents.items() if i.dtmf}

    def targets(self) -> dict[str, str]:
        return {name: i.next for name, i in self.args.intents.items()}

    def prompts(self) -> list[tuple[str, tuple[Part, ...]]]:
        return [("prompt", self.prompt), ("no_input", self.no_input),
                ("no_match", self.no_match)]

    def phrases(self, language: str) -> dict[str, list[str]]:
        every = self.all_phrases()
        return {name: i.phrases.get(language) or every[name]
                if isinstance(i.phrases, dict) else every[name]
                for name, i in self.args.intents.items()}

    def all_phrases(self) -> dict[str, list[str]]:
        """Each intent's phrases in every language (a chat has no call language)."""
        return {name: i.phrases if isinstance(i.phrases, list) else
                [x for ps in i.phrases.values() for x in ps]
                for name, i in self.args.intents.items()}

    async def run(self, ctx: Context) -> str | None:
        outcome = "no_input"
        for attempt in range(self.args.retries + 1):
            prompt = self.prompt
            if attempt:
                prompt = (self.no_input if outcome == "no_input" else self.no_match) + prompt
            heard = await ctx.caller.listen(self.phrases(ctx.language), language=ctx.language,
                                            timeout=self.args.timeout, prompt=ctx.utter(prompt))
            if heard is None:
                outcome = "no_input"
                continue
            intent = self.keys.get(heard.dtmf) if heard.dtmf else heard.intent
            if heard.dtmf or heard.confidence >= self.args.min_confidence:
                ctx.vars[self.args.into] = {"text": heard.text, "intent": intent,
                                            "confidence": heard.confidence, "dtmf": heard.dtmf}
                if intent is not None:
                    return intent
            outcome = "no_match"
        return outcome
