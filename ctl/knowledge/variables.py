"""Variables in quick replies (`{{ customer.name }}`), filled in when the reply is
inserted, in jinja2's immutable sandbox like the IVR's templates (ctl/ivr/expr.py).

A reply is checked when it is saved: rendered against every variable there is, with
StrictUndefined, so `{{ custmer.name }}` is refused then, naming the variable, instead of
sending a blank to a customer later. A known variable without a value (a customer with no
name) renders empty; `{{ customer.name or "there" }}` gives a fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ctl.errors import BadRequest

# Every variable a reply may use, with a description the editor shows.
VARIABLES: dict[str, dict[str, str]] = {
    "customer": {"name": "the customer's name", "phone": "their phone number",
                 "email": "their email address", "tier": "their tier (standard, vip...)"},
    "agent": {"name": "your display name", "username": "your username"},
    "ticket": {"number": "the number of the conversation's latest ticket",
               "subject": "that ticket's subject", "status": "that ticket's status"},
    "contact": {"id": "the conversation's id", "channel": "its channel (chat, email...)"},
}


def _finalize(value: Any) -> Any:
    return "" if value is None else value


_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                     finalize=_finalize, keep_trailing_newline=True)


def names() -> list[str]:
    return [f"{group}.{field}" for group, fields in VARIABLES.items() for field in fields]


def check(body: str) -> None:
    """Refuse a body that does not compile or uses a variable not in VARIABLES."""
    try:
        tree = _ENV.parse(body)
    except TemplateError as e:
        raise BadRequest(f"the reply's template is invalid: {e.message}") from None
    used = sorted(meta.find_undeclared_variables(tree))
    used += [f"{n.node.name}.{n.attr}" for n in tree.find_all(nodes.Getattr)
             if isinstance(n.node, nodes.Name) and n.node.name in VARIABLES]
    unknown = [u for u in used if u not in VARIABLES and u not in names()]
    if unknown:
        # The list is in the message, not a hint: the editor shows the message.
        raise BadRequest(f"unknown variable {unknown[0]} in the reply (there are "
                         f"{', '.join(names())})")
    # What the names alone do not show (subscripts, filters on wrong types) fails here.
    render(body, {g: {f: f"<{g}.{f}>" for f in fields} for g, fields in VARIABLES.items()})


def render(body: str, values: Mapping[str, Any]) -> str:
    if "{{" not in body and "{%" not in body:
        return body
    try:
        return _ENV.from_string(body).render(**values)
    except UndefinedError as e:
        raise BadRequest(f"unknown variable in the reply: {e.message}",
                         hint="variables: " + ", ".join(names())) from None
    except TemplateError as e:
        raise BadRequest(f"the reply's template is invalid: {e.message}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as e:
        raise BadRequest(f"the reply's template failed: {e}") from None
