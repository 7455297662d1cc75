"""A flow: named steps, each one verb plus where to go next. Parsed from YAML with every
problem collected and named by file:line:column, before anything runs."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctl import yamlloc
from ctl.errors import ConfigError
from ctl.ivr.expr import ExprError
from ctl.ivr.verbs import VERBS
from ctl.ivr.verbs.base import LANG, STEP, Verb

STEP_KEYS = {"next", "on", "description"}


@dataclass(frozen=True)
class Problem:
    where: str  # file:line:column
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" + (f" ({self.hint})" if self.hint else "")


class FlowInvalid(ConfigError):
    """Every problem found in a flow, each with its place."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid flow:\n  " + "\n  ".join(str(p) for p in problems))


@dataclass(frozen=True)
class Step:
    name: str
    verb: Verb
    next: str | None
    on: Mapping[str, str]
    where: str
    transitions: Mapping[str, str] = field(default_factory=dict)  # outcome -> step

    def after(self, outcome: str | None) -> str | None:
        if outcome is None:
            return self.next
        if outcome not in self.transitions:
            outcome = self.verb.fallbacks.get(outcome, outcome)
        return self.transitions.get(outcome, self.next)


@dataclass(frozen=True)
class Flow:
    name: str
    description: str
    languages: tuple[str, ...]
    language: str  # the caller's language until a step sets `language`
    start: str
    steps: Mapping[str, Step]
    vars: Mapping[str, Any]
    path: Path
    source: str
    sha256: str
    version: int = 0  # 0: not published
    doc: yamlloc.YamlDoc | None = None


class Header(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    description: str = ""
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    language: str | None = Field(None, pattern=LANG)
    vars: dict[str, Any] = Field(default_factory=dict)
    start: str = Field(pattern=STEP)
    steps: dict[str, Any]


def load(path: Path) -> Flow:
    return parse(path.read_text(encoding="utf-8"), path)


def parse(source: str, path: Path) -> Flow:
    """The flow in `source` (read from `path`), or FlowInvalid naming every problem."""
    doc = yamlloc.parse(source, path, yamlloc.Yaml12Loader)
    problems: list[Problem] = []
    if not isinstance(doc.data, dict):
        raise FlowInvalid([Problem(f"{path}:1:1", "a flow is a mapping with name, start "
                                   "and steps")])
    try:
        header = Header.model_validate(doc.data)
    except ValidationError as e:
        raise FlowInvalid([_problem(doc, [], err) for err in e.errors()]) from None
    for lang in header.languages:
        if not re.match(LANG, lang):
            problems.append(Problem(doc.where(["languages"]), f"{lang!r} is not a language "
                                    "tag", "e.g. en, zh-CN"))
    steps: dict[str, Step] = {}
    for name, raw in header.steps.items():
        step = _step(doc, str(name), raw, problems)
        if step is not None:
            steps[step.name] = step
    if problems:
        raise FlowInvalid(problems)
    language = header.language or header.languages[0]
    return Flow(header.name, header.description, tuple(header.languages), language,
                header.start, steps, header.vars, path, source,
                hashlib.sha256(source.encode()).hexdigest(), doc=doc)


def _step(doc: yamlloc.YamlDoc, name: str, raw: Any, problems: list[Problem]) -> Step | None:
    at = ["steps", name]
    if not re.match(STEP, name):
        problems.append(Problem(doc.where(at), f"step name {name!r} must be letters, "
                                "digits, _ or -, starting with a letter"))
        return None
    if not isinstance(raw, dict):
        problems.append(Problem(doc.where(at), f"step {name!r} must be a mapping with one "
                                "verb", f"e.g. say: \"Hello\"; verbs: {', '.join(VERBS)}"))
        return None
    verbs = [k for k in raw if k not in STEP_KEYS]
    if len(verbs) != 1:
        for k in verbs:
            if k not in VERBS:
                close = _closest(str(k), [*VERBS, *STEP_KEYS])
                problems.append(Problem(doc.where([*at, k]), f"unknown verb {k!r}",
                                        f"did you mean {close!r}?" if close else
                                        f"verbs: {', '.join(VERBS)}"))
        if len(verbs) == 0 or all(k in VERBS for k in verbs):
            problems.append(Problem(doc.where(at), f"step {name!r} has {len(verbs)} verbs "
                                    f"({', '.join(map(str, verbs)) or 'none'}): it needs "
                                    "exactly one"))
        return None
    kind = verbs[0]
    cls = VERBS.get(kind)
    if cls is None:
        close = _closest(str(kind), list(VERBS))
        problems.append(Problem(doc.where([*at, kind]), f"unknown verb {kind!r}",
                                f"did you mean {close!r}?" if close else
                                f"verbs: {', '.join(VERBS)}"))
        return None
    before = len(problems)
    nxt, on = raw.get("next"), raw.get("on") or {}
    if nxt is not None and not isinstance(nxt, str):
        problems.append(Problem(doc.where([*at, "next"]), "next must be a step name"))
    if not isinstance(on, dict) or not all(isinstance(v, str) for v in on.values()):
        problems.append(Problem(doc.where([*at, "on"]), "on must map outcomes to step names",
                                f"outcomes of {kind}: {', '.join(cls.outcomes) or 'none'}"))
        on = {}
    for outcome in on:
        if outcome not in cls.outcomes:
            problems.append(Problem(doc.where([*at, "on", outcome]),
                                    f"{kind} has no outcome {outcome!r}",
                                    f"its outcomes: {', '.join(cls.outcomes) or 'none'}"))
    try:
        verb = cls(cls.Args.model_validate(raw[kind]))
    except ValidationError as e:
        problems += [_problem(doc, [*at, kind], err) for err in e.errors()]
        return None
    except ExprError as e:
        problems.append(Problem(doc.where([*at, kind]), str(e)))
        return None
    if len(problems) > before:
        return None
    transitions = {**verb.targets(), **on}
    return Step(name, verb, nxt, on, doc.where([*at, kind]), transitions)


def _closest(name: str, names: list[str]) -> str | None:
    """The likeliest meant name (of equally close ones, the one of nearest length)."""
    close = difflib.get_close_matches(name, names, 3)
    return min(close, key=lambda c: abs(len(c) - len(name))) if close else None


def _problem(doc: yamlloc.YamlDoc, at: list[str], err: Any) -> Problem:
    loc = [p for p in err["loc"] if isinstance(p, str | int)]
    # pydantic names the union member it tried ("str", "list[...]"): not YAML keys
    keys = [p for p in loc if not (isinstance(p, str) and ("[" in p or p in _TYPES))]
    dotted = ".".join(str(p) for p in [*at[1:], *keys])
    msg = err["msg"].removeprefix("Value error, ")  # pydantic's, for our own checks
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {keys[-1]!r}" if keys else "unknown key"
    elif err["type"] == "missing":
        msg = f"{keys[-1]!r} is required" if keys else "a value is required"
    if isinstance(err.get("ctx", {}).get("error"), ExprError):
        msg = str(err["ctx"]["error"])
    return Problem(doc.where([*at, *keys]), f"{dotted}: {msg}" if dotted else msg)


_TYPES = {"str", "int", "float", "bool", "dict", "list", "none", "function-after",
          "function-before", "PlayPart", "SayPart"}
