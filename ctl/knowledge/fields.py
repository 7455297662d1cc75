"""Checks on what is put into articles and quick replies: every refusal names the field."""

from __future__ import annotations

import re
from typing import Any

from ctl.errors import BadRequest

_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


def text(body: dict[str, Any], name: str, limit: int, *, required: bool = True) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be text")
    value = value.strip()
    if required and not value:
        raise BadRequest(f"{name} is required")
    if len(value) > limit:
        raise BadRequest(f"{name} is {len(value)} characters long; at most {limit}")
    return value


def language(body: dict[str, Any], default: str | None = None) -> str:
    value = body.get("language", default)
    if not isinstance(value, str) or not _LANGUAGE.fullmatch(value):
        raise BadRequest(f"language {value!r} is not a language tag (en, zh-CN...)")
    return value


def choice(body: dict[str, Any], name: str, options: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value not in options:
        raise BadRequest(f"{name} {value!r} is not one of {', '.join(options)}")
    return str(value)


def tags(body: dict[str, Any]) -> list[str]:
    value = body.get("tags", [])
    if not isinstance(value, list) or not all(isinstance(t, str) and 0 < len(t.strip()) <= 64
                                               for t in value) or len(value) > 20:
        raise BadRequest("tags must be a list of at most 20 words (each 1-64 characters)")
    return list(dict.fromkeys(t.strip() for t in value))


def known(body: dict[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadRequest(f"unknown field {extra[0]!r}",
                         hint="fields: " + ", ".join(sorted(allowed)))
