from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ctl.ivr.expr import Expr
from ctl.ivr.verbs.base import STEP, Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    when: str  # an expression: caller, customer.tier, vars, now.hour...
    next: str = Field(pattern=STEP)


class BranchArgs(Args):
    _short: ClassVar[str | None] = "cases"
    cases: list[Case] = Field(min_length=1)  # the first whose `when` is true wins
    otherwise: str | None = Field(None, pattern=STEP)  # none true (default: the step's next)


class Branch(Verb):
    """Go where the first true condition says."""

    name = "branch"
    Args = BranchArgs

    def __init__(self, args: BranchArgs) -> None:
        super().__init__(args)
        self.conditions = [Expr(c.when) for c in args.cases]

    def targets(self) -> dict[str, str]:
        out = {f"case{i + 1}": c.next for i, c in enumerate(self.args.cases)}
        if self.args.otherwise:
            out["otherwise"] = self.args.otherwise
        return out

    def expressions(self) -> list[Expr]:
        return self.conditions

    async def run(self, ctx: Context) -> str | None:
        variables = {**ctx.vars, "now": ctx.services.now()}
        for i, condition in enumerate(self.conditions):
            if condition(variables):
                return f"case{i + 1}"
        return "otherwise" if self.args.otherwise else None
