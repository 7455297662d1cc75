from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ctl.ivr.expr import Template
from ctl.ivr.verbs.base import Args, Media, Part, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class PlayArgs(Args):
    _short: ClassVar[str | None] = "media"
    media: str | list[str]  # sound:NAME, a file path without extension, or an http(s) URL
    barge_in: bool = True


class Play(Verb):
    """Play recorded audio: Asterisk sounds, files, or URLs."""

    name = "play"
    Args = PlayArgs

    def __init__(self, args: PlayArgs) -> None:
        super().__init__(args)
        media = args.media if isinstance(args.media, list) else [args.media]
        self.parts: tuple[Part, ...] = tuple(Media(Template(m)) for m in media)

    def prompts(self) -> list[tuple[str, tuple[Part, ...]]]:
        return [("media", self.parts)]

    async def run(self, ctx: Context) -> str | None:
        await ctx.caller.play(ctx.utter(self.parts), barge_in=self.args.barge_in)
        return None
