"""What every verb is: its arguments (a pydantic model, hence the JSON Schema), the
outcomes a step may branch on, and run()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ctl.ivr.expr import Expr, Template

if TYPE_CHECKING:
    from ctl.ivr.runner import Context

LANG = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
STEP = r"^[A-Za-z_][A-Za-z0-9_-]*$"
Text = str | dict[str, str]  # one text, or one per language ("en", "zh-CN", ...)


class Args(BaseModel):
    """Base of every verb's arguments: unknown keys are errors; `_short` names the field a
    bare value fills (`say: "Hello"` is `say: {text: "Hello"}`)."""

    model_config = ConfigDict(extra="forbid")
    _short: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        short = cls._short
        if value is None or value is True:  # `hangup:` alone
            return {}
        if short is None:
            return value
        if isinstance(value, dict) and (not value or set(value) & set(cls.model_fields)):
            return value
        return {short: value}


class PlayPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    play: str = Field(description="media: sound:NAME, a file path, or an http(s) URL")


class SayPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    say: Text
    voice: str | None = None
    language: str | None = Field(None, pattern=LANG)  # spoken in this language, whatever
    # the caller's (a bilingual language menu: "For English press 1. 中文请按 2。")


# Left to right: {say: ..., language: en} is a SayPart, not a text per language "say".
_Item = Annotated[SayPart | PlayPart | Text, Field(union_mode="left_to_right")]
PromptSpec = Text | list[_Item]


@dataclass(frozen=True)
class Speech:
    texts: dict[str, Template]  # language ("*": any) -> text
    voice: str | None = None
    language: str | None = None  # fixed, whatever the caller's


@dataclass(frozen=True)
class Media:
    uri: Template


Part = Speech | Media


def prompt_parts(spec: PromptSpec | None, voice: str | None = None) -> tuple[Part, ...]:
    """A prompt as written (text, per-language texts, or a list mixing say/play) -> parts;
    `voice`: for the texts that name none."""
    if spec is None:
        return ()
    items = spec if isinstance(spec, list) else [spec]
    parts: list[Part] = []
    for item in items:
        if isinstance(item, PlayPart):
            parts.append(Media(Template(item.play)))
        elif isinstance(item, SayPart):
            parts.append(_speech(item.say, item.voice or voice, item.language))
        else:
            parts.append(_speech(item, voice))
    return tuple(parts)


def _speech(text: Text, voice: str | None, language: str | None = None) -> Speech:
    texts = {"*": text} if isinstance(text, str) else dict(text)
    return Speech({lang: Template(t) for lang, t in texts.items()}, voice, language)


class Verb:
    """One verb of a step. Subclasses set `name`, `Args`, and override what applies."""

    name: ClassVar[str]
    Args: ClassVar[type[Args]]
    outcomes: ClassVar[tuple[str, ...]] = ()  # the keys allowed under the step's `on:`
    fallbacks: ClassVar[dict[str, str]] = {}  # an outcome without a transition -> another
    waits_for_caller: ClassVar[bool] = False  # it takes input (loops through it are fine)
    ends_call: ClassVar[bool] = False

    def __init__(self, args: Any) -> None:
        self.args = args

    def targets(self) -> dict[str, str]:
        """Steps named inside the arguments (a menu's choices...): label -> step."""
        return {}

    def prompts(self) -> list[tuple[str, tuple[Part, ...]]]:
        """(argument name, parts) of every prompt, for language checks and pre-rendering."""
        return []

    def expressions(self) -> list[Expr]:
        return []

    def flows(self) -> list[str]:
        """Other flows this step runs or jumps to."""
        return []

    async def run(self, ctx: Context) -> str | None:
        """Do the verb; the outcome to branch on (None: the step's `next`)."""
        raise NotImplementedError
