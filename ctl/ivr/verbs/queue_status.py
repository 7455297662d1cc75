from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from ctl.ivr.verbs.base import Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class QueueStatusArgs(Args):
    _short: ClassVar[str | None] = "queue"
    queue: str
    into: str = Field("queue", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class QueueStatus(Verb):
    """A queue right now: agents_available, waiting, expected_wait (s), longest_wait (s)."""

    name = "queue_status"
    Args = QueueStatusArgs

    async def run(self, ctx: Context) -> str | None:
        ctx.vars[self.args.into] = await ctx.services.queue_status(self.args.queue)
        return None
