from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import field_validator

from ctl.ivr.expr import Expr
from ctl.ivr.values import Value
from ctl.ivr.verbs.base import Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class SetArgs(Args):
    _short: ClassVar[str | None] = "values"
    values: dict[str, Any]  # name -> literal, "text {{ x }}", or "= expression"

    @field_validator("values")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not name.isidentifier():
                raise ValueError(f"{name!r} is not a variable name")
        return v


class Set(Verb):
    """Set variables (in order: a later one may use an earlier one)."""

    name = "set"
    Args = SetArgs

    def __init__(self, args: SetArgs) -> None:
        super().__init__(args)
        self.values = {k: Value(v) for k, v in args.values.items()}

    def expressions(self) -> list[Expr]:
        return [e for v in self.values.values() for e in v.expressions()]

    async def run(self, ctx: Context) -> str | None:
        for name, value in self.values.items():
            ctx.vars[name] = value(ctx.vars)
        return None
