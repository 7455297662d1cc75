"""Expressions and text templates in flows, evaluated in jinja2's sandbox.

Why jinja2 rather than an evaluator of our own: it is already a dependency, its sandbox
forbids attribute tricks and calls to anything unsafe, expressions compile once when the
flow is loaded (so a syntax error is a validation error with file:line), and admins who
write templates for the web pages already know its syntax."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_LENIENT = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
# (lenient: an unknown name, or a field of one, is None in expressions and "" in text)


class ExprError(ValueError):
    """An expression or template that does not compile or cannot be evaluated."""


class Expr:
    """`customer.tier == 'vip' and attempts < 3`: compiled once, evaluated per call."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._compiled = _ENV.compile_expression(source, undefined_to_none=False)
            self._lenient = _LENIENT.compile_expression(source)
        except TemplateError as e:
            raise ExprError(f"invalid expression {source!r}: {e.message}") from None

    def __call__(self, variables: Mapping[str, Any], *, strict: bool = False) -> Any:
        """The value; an unknown variable is None unless `strict` (then an ExprError)."""
        try:
            return (self._compiled if strict else self._lenient)(**variables)
        except TemplateError as e:
            raise ExprError(f"{self.source!r}: {e.message}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as e:
            raise ExprError(f"{self.source!r}: {e}") from None

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


class Template:
    """Prompt text or a URL with `{{ variables }}`; plain text costs nothing to render."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.static = "{{" not in source and "{%" not in source
        if not self.static:
            try:
                self._template = _LENIENT.from_string(source)
            except TemplateError as e:
                raise ExprError(f"invalid template {source!r}: {e.message}") from None

    def render(self, variables: Mapping[str, Any]) -> str:
        if self.static:
            return self.source
        try:
            return self._template.render(**variables)
        except TemplateError as e:
            raise ExprError(f"{self.source!r}: {e.message}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as e:
            raise ExprError(f"{self.source!r}: {e}") from None

    def __repr__(self) -> str:
        return f"Template({self.source!r})"
