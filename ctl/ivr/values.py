"""Values in flows that may be computed: "= expression" (the value of a sandboxed
expression), text with {{ templates }}, or a literal. Compiled when the flow loads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctl.ivr.expr import Expr, Template


class Value:
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.expr: Expr | None = None
        self.template: Template | None = None
        self.items: dict[str, Value] | list[Value] | None = None
        if isinstance(raw, str) and raw.startswith("="):
            self.expr = Expr(raw[1:].strip())
        elif isinstance(raw, str):
            self.template = Template(raw)
        elif isinstance(raw, dict):
            self.items = {str(k): Value(v) for k, v in raw.items()}
        elif isinstance(raw, list):
            self.items = [Value(v) for v in raw]

    def __call__(self, variables: Mapping[str, Any]) -> Any:
        if self.expr is not None:
            return self.expr(variables)
        if self.template is not None:
            return self.template.render(variables)
        if isinstance(self.items, dict):
            return {k: v(variables) for k, v in self.items.items()}
        if isinstance(self.items, list):
            return [v(variables) for v in self.items]
        return self.raw

    def expressions(self) -> list[Expr]:
        if self.expr is not None:
            return [self.expr]
        if isinstance(self.items, dict):
            return [e for v in self.items.values() for e in v.expressions()]
        if isinstance(self.items, list):
            return [e for v in self.items for e in v.expressions()]
        return []
