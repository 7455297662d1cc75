from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import TYPE_CHECKING, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from ctl.ivr.verbs.base import Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")


class HoursArgs(Args):
    timezone: str = "UTC"  # IANA name, e.g. Asia/Shanghai
    open: dict[str, str | list[str]]  # "mon-fri": "09:00-18:00", "sat": [...]
    holidays: list[date] = Field(default_factory=list)  # closed all day

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (e.g. Europe/Paris)") from None
        return v

    @field_validator("open")
    @classmethod
    def _week(cls, v: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for days, spans in v.items():
            _days(days)
            for span in [spans] if isinstance(spans, str) else spans:
                m = _SPAN.match(span)
                if not m or m.group(1, 2) >= m.group(3, 4):
                    raise ValueError(f"{days}: {span!r} is not a span like 09:00-18:00")
        return v


def _days(spec: str) -> list[int]:
    """"mon-fri" -> [0..4]; "sat" -> [5]; "sat,sun" -> [5, 6]."""
    out: list[int] = []
    for part in spec.lower().split(","):
        ends = part.strip().split("-")
        if not all(e in DAYS for e in ends) or len(ends) > 2:
            raise ValueError(f"{spec!r}: days are mon..sun, a range mon-fri, or a list")
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        out += list(range(first, last + 1)) if first <= last else \
            [*range(first, 7), *range(0, last + 1)]
    return out


class Hours(Verb):
    """Open, closed or a holiday, now, in the contact center's time zone."""

    name = "hours"
    Args = HoursArgs
    outcomes = ("open", "closed", "holiday")
    # no `on: holiday`: a holiday is a closed day
    fallbacks: ClassVar[dict[str, str]] = {"holiday": "closed"}

    def __init__(self, args: HoursArgs) -> None:
        super().__init__(args)
        self.zone = ZoneInfo(args.timezone)
        self.week: dict[int, list[tuple[time, time]]] = {d: [] for d in range(7)}
        for days, spans in args.open.items():
            for span in [spans] if isinstance(spans, str) else spans:
                start, end = span.split("-")
                for d in _days(days):
                    self.week[d].append((_t(start), _t(end)))

    def state(self, now: datetime) -> str:
        local = now.astimezone(self.zone)
        if local.date() in self.args.holidays:
            return "holiday"
        t = local.time()
        return "open" if any(a <= t < b for a, b in self.week[local.weekday()]) else "closed"

    async def run(self, ctx: Context) -> str | None:
        return self.state(ctx.services.now())


def _t(hhmm: str) -> time:
    h, m = map(int, hhmm.split(":"))
    return time.max if h == 24 else time(h, m)
