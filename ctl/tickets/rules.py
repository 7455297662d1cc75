"""The tickets file admins write (YAML): business hours, holidays, SLA policies per
priority, departments, custom fields, and rules (on an event, if conditions, then
actions). Errors name file:line:column, like the settings file's.

```yaml
timezone: Asia/Shanghai
business_hours: {mon-fri: "09:00-12:00,13:00-18:00", sat: "10:00-14:00"}
holidays: [2026-10-01]
sla:
  urgent: {first_response: 30m, resolution: 4h}
  normal: {first_response: 4h, resolution: 24h, warn_at: 0.75}
departments: {technical-support: tech}     # department -> routing queue
fields: [{name: product, choices: [router, modem]}, {name: serial}]
rules:
  - name: refunds go to billing
    when: [create]
    if: {text: refund}
    then: {department: billing, add_tags: [refund], notify: received}
  - name: breaches escalate
    when: [sla_breach]
    if: {priority: [high, urgent]}
    then: {priority: urgent, department: technical-support, note: "SLA breached"}
```
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ctl import yamlloc
from ctl.errors import ConfigError
from ctl.tickets.model import PRIORITIES, TicketView
from ctl.tickets.sla import Calendar, Policy, Sla

EVENTS = ("create", "update", "customer_reply", "sla_warning", "sla_breach")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNITS = {"s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_RANGE = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")
OneOrMany = str | list[str] | None


def seconds(value: str | float) -> float:
    """"30m", "4h", "90s" or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration (e.g. 30m, 4h, 90s)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PolicyFile(_Model):
    first_response: str | float | None = None
    resolution: str | float | None = None
    warn_at: float = Field(0.8, gt=0, le=1)

    @field_validator("first_response", "resolution")
    @classmethod
    def _duration(cls, v: str | float | None) -> str | float | None:
        if v is not None and seconds(v) <= 0:
            raise ValueError("must be longer than zero")
        return v


class FieldDef(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    choices: list[str | int] | None = None
    required: bool = False


class Condition(_Model):
    priority: OneOrMany = None
    status: OneOrMany = None
    category: OneOrMany = None
    department: OneOrMany = None
    channel: OneOrMany = None
    source: OneOrMany = None
    tag: str | None = None
    text: str | None = None  # in subject or description, any case
    fields: dict[str, Any] | None = None


class Action(_Model):
    priority: str | None = None
    department: str | None = None
    add_tags: list[str] = Field(default_factory=list)
    notify: str | None = None  # a template name (templates/<name>.<lang>.j2)
    note: str | None = None  # an internal note


class RuleFile(_Model):
    name: str
    # "when", not "on": YAML 1.1 reads a bare `on` key as the boolean true.
    when: list[Literal["create", "update", "customer_reply", "sla_warning", "sla_breach"]]
    if_: Condition = Field(default_factory=Condition, alias="if")
    then: Action
    stop: bool = False  # later rules are not evaluated for this event


class TicketsFile(_Model):
    timezone: str = "UTC"
    business_hours: dict[str, str] | None = None  # None: around the clock
    holidays: list[date] = Field(default_factory=list)
    sla: dict[str, PolicyFile] = Field(default_factory=dict)
    departments: dict[str, str] = Field(default_factory=dict)
    fields: list[FieldDef] = Field(default_factory=list)
    rules: list[RuleFile] = Field(default_factory=list)
    language: Literal["en", "zh-CN"] = "en"  # notifications when the customer has none


@dataclass(frozen=True)
class Rule:
    name: str
    on: frozenset[str]
    condition: Condition
    then: Action
    stop: bool


_ENUMERATED = ("priority", "status", "category", "department", "channel", "source")
# What is left to check after the enumerated fields: (tag, casefolded text, field values).
_Rest = tuple[str | None, str | None, tuple[tuple[str, Any], ...]] | None


class Rules:
    """Rules compiled into bit masks: for each enumerated field (priority, status...) a
    table from a value to the rules that accept it, so matching a ticket costs a few dict
    lookups and ANDs whatever the number of rules; only the survivors check tags, text
    and custom fields (the ticket's text is casefolded once, not once per rule)."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._events: dict[str, int] = {}
        for i, r in enumerate(self.rules):
            for event in r.on:
                self._events[event] = self._events.get(event, 0) | 1 << i
        self._tables: list[tuple[str, dict[Any, int], int]] = []
        for name in _ENUMERATED:
            wanted = {i: getattr(r.condition, name) for i, r in enumerate(self.rules)
                      if getattr(r.condition, name) is not None}
            if not wanted:
                continue
            free = sum(1 << i for i in range(len(self.rules)) if i not in wanted)
            table: dict[Any, int] = {}
            for i, values in wanted.items():
                for v in [values] if isinstance(values, str) else values:
                    table[v] = table.get(v, free) | 1 << i
            self._tables.append((name, table, free))
        self._rest: list[_Rest] = [_rest(r.condition) for r in self.rules]

    def matching(self, event: str, ticket: TicketView) -> list[Rule]:
        """The rules that fire for `event` on `ticket`, in file order."""
        mask = self._events.get(event, 0)
        for name, table, free in self._tables:
            if not mask:
                return []
            mask &= table.get(getattr(ticket, name), free)
        out: list[Rule] = []
        texts: tuple[str, str] | None = None
        while mask:
            bit = mask & -mask
            mask ^= bit
            i = bit.bit_length() - 1
            rest = self._rest[i]
            if rest is not None:
                tag, needle, fields = rest
                if tag is not None and tag not in ticket.tags:
                    continue
                if needle is not None:
                    if texts is None:
                        texts = (ticket.subject.casefold(), ticket.description.casefold())
                    if needle not in texts[0] and needle not in texts[1]:
                        continue
                if any(ticket.fields.get(k) != v for k, v in fields):
                    continue
            out.append(self.rules[i])
            if self.rules[i].stop:
                break
        return out


def _rest(c: Condition) -> _Rest:
    if c.tag is None and c.text is None and not c.fields:
        return None
    return (c.tag, None if c.text is None else c.text.casefold(),
            tuple((c.fields or {}).items()))


@dataclass(frozen=True)
class TicketsConfig:
    sla: Sla
    rules: Rules
    departments: dict[str, str]
    fields: tuple[FieldDef, ...]
    language: str

    @classmethod
    def empty(cls, queues: Collection[str] = ()) -> TicketsConfig:
        """No file: no SLA, no rules, every routing queue a department."""
        return cls(Sla(Calendar.always(), {}), Rules([]), {q: q for q in queues}, (), "en")


def load(path: Path, queues: Collection[str], templates: Collection[str] = ()) -> TicketsConfig:
    """Read and check the tickets file; ConfigError lists every problem with file:line."""
    doc = _read(path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1:1: the tickets file must be a mapping")
    try:
        parsed = TicketsFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_explain(e, doc)) from None
    problems: list[tuple[Sequence[str | int], str]] = []
    config = _build(parsed, queues, templates, problems)
    if problems:
        lines = [f"{doc.where(loc)}: {'.'.join(map(str, loc))}: {msg}" for loc, msg in problems]
        raise ConfigError("invalid tickets file:\n  " + "\n  ".join(lines))
    return config


class _Loader(yaml.SafeLoader):
    """Dates stay text until pydantic reads them: a bad one then gets its file:line."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _read(path: Path) -> yamlloc.YamlDoc:
    return yamlloc.load(path, _Loader)


def _explain(error: ValidationError, doc: yamlloc.YamlDoc) -> str:
    lines = []
    for err in error.errors():
        loc = [p if p != "if_" else "if" for p in err["loc"] if isinstance(p, str | int)]
        msg = f"unknown key {loc[-1]!r}" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{doc.where(loc)}: {'.'.join(map(str, loc))}: {msg}")
    return "invalid tickets file:\n  " + "\n  ".join(lines)


def _build(f: TicketsFile, queues: Collection[str], templates: Collection[str],
           problems: list[tuple[Sequence[str | int], str]]) -> TicketsConfig:
    try:
        tz = ZoneInfo(f.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append((["timezone"], f"unknown time zone {f.timezone!r}"))
        tz = ZoneInfo("UTC")
    week = _week(f.business_hours, problems) if f.business_hours is not None else \
        Calendar.always().week
    policies = {}
    for prio, p in f.sla.items():
        if prio not in PRIORITIES:
            problems.append((["sla", prio], f"unknown priority; one of {', '.join(PRIORITIES)}"))
        policies[prio] = Policy(None if p.first_response is None else seconds(p.first_response),
                                None if p.resolution is None else seconds(p.resolution),
                                p.warn_at)
    departments = {q: q for q in queues} | f.departments
    for name, queue in f.departments.items():
        if queue not in queues:
            problems.append((["departments", name],
                             f"no routing queue {queue!r}; queues: {', '.join(sorted(queues))}"))
    rules = []
    for i, r in enumerate(f.rules):
        _check_action(r.then, ["rules", i, "then"], departments, templates, problems)
        rules.append(Rule(r.name, frozenset(r.when), r.if_, r.then, r.stop))
    return TicketsConfig(Sla(Calendar(tz, week, frozenset(f.holidays)), policies),
                         Rules(rules), departments, tuple(f.fields), f.language)


def _check_action(a: Action, loc: list[str | int], departments: Collection[str],
                  templates: Collection[str],
                  problems: list[tuple[Sequence[str | int], str]]) -> None:
    if a.priority is not None and a.priority not in PRIORITIES:
        problems.append(([*loc, "priority"],
                         f"unknown priority {a.priority!r}; one of {', '.join(PRIORITIES)}"))
    if a.department is not None and a.department not in departments:
        problems.append(([*loc, "department"], f"unknown department {a.department!r}; "
                         f"departments: {', '.join(sorted(departments))}"))
    if a.notify is not None and templates and a.notify not in templates:
        problems.append(([*loc, "notify"], f"no template {a.notify!r}; templates: "
                         f"{', '.join(sorted(templates))}"))


def _week(hours: dict[str, str], problems: list[tuple[Sequence[str | int], str]]
          ) -> tuple[tuple[tuple[int, int], ...], ...]:
    week: list[list[tuple[int, int]]] = [[] for _ in _DAYS]
    for key, spans in hours.items():
        days = _days(key)
        if days is None:
            problems.append((["business_hours", key],
                             "days must be like mon, mon-fri or sat,sun"))
            continue
        for span in str(spans).split(","):
            m = _RANGE.match(span.strip())
            a = int(m.group(1)) * 60 + int(m.group(2)) if m else -1
            b = int(m.group(3)) * 60 + int(m.group(4)) if m else -1
            if not m or not 0 <= a < b <= 24 * 60:
                problems.append((["business_hours", key],
                                 f"{span.strip()!r} is not a time range like 09:00-18:00"))
                continue
            for d in days:
                week[d].append((a, b))
    return tuple(tuple(sorted(day)) for day in week)


def _days(key: str) -> list[int] | None:
    out: list[int] = []
    for part in key.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            return None
        a, b = _DAYS.index(first), _DAYS.index(last or first)
        out.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return out
