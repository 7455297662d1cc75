from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from ctl.ivr.values import Value
from ctl.ivr.verbs.base import Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class TicketArgs(Args):
    subject: str  # may use {{ variables }}
    description: str = ""
    priority: str = "normal"
    department: str | None = None
    category: str | None = None
    into: str = Field("ticket", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # {id, number}


class Ticket(Verb):
    """Open a work order for what cannot be solved in the call."""

    name = "ticket"
    Args = TicketArgs
    outcomes = ("error",)

    def __init__(self, args: TicketArgs) -> None:
        super().__init__(args)
        self.subject, self.description = Value(args.subject), Value(args.description)

    async def run(self, ctx: Context) -> str | None:
        a = self.args
        try:
            ctx.vars[a.into] = await ctx.services.create_ticket({
                "subject": self.subject(ctx.vars), "description": self.description(ctx.vars),
                "priority": a.priority, "department": a.department, "category": a.category,
                "source": "ivr", "contact_id": ctx.caller.contact_id})
        except Exception as e:  # the caller hears the error branch, not silence
            await ctx.caller.log("ticket", {"error": str(e)[:300]})
            return "error"
        return None
