from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from ctl.ivr.values import Value
from ctl.ivr.verbs.base import Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class LookupArgs(Args):
    kind: str = "phone"  # an identity kind: phone, email, account...
    value: str = "{{ caller }}"  # default: the caller's number
    into: str = Field("customer", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class LookupCustomer(Verb):
    """Who is calling: the customer (id, name, tier, open tickets...) into a variable."""

    name = "lookup_customer"
    Args = LookupArgs
    outcomes = ("found", "not_found")

    def __init__(self, args: LookupArgs) -> None:
        super().__init__(args)
        self.value = Value(args.value)

    async def run(self, ctx: Context) -> str | None:
        value = str(self.value(ctx.vars))
        found = await ctx.services.lookup_customer(self.args.kind, value) if value else None
        ctx.vars[self.args.into] = found or {}
        return "found" if found else "not_found"
