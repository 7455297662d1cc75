"""SLA clocks over business hours and holidays.

A policy per priority gives the time to first response and to resolution, counted in the
calendar's business time (in its time zone): a ticket created on Friday at 17:30 with 2
business hours to resolve, in 09:00-18:00 Monday-Friday, is due on Monday at 10:30. Every
function takes `now`: the clock is whoever calls (the service's, or a test's virtual one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_DAY = 24 * 60
_MAX_DAYS = 3 * 366  # a calendar with no business time at all must not loop forever

Interval = tuple[int, int]  # minutes of the local day: [start, end)


@dataclass(frozen=True)
class Calendar:
    tz: ZoneInfo
    week: tuple[tuple[Interval, ...], ...]  # Monday..Sunday
    holidays: frozenset[date] = frozenset()

    @classmethod
    def always(cls) -> Calendar:
        return cls(ZoneInfo("UTC"), tuple(((0, _DAY),) for _ in range(7)))

    def _open(self, day: date) -> tuple[Interval, ...]:
        return () if day in self.holidays else self.week[day.weekday()]

    def _spans(self, start: datetime) -> list[tuple[datetime, datetime]]:
        """Business spans from the local day of `start`, one day at a time (a generator
        would do; a list per day keeps the arithmetic easy to read)."""
        day = start.astimezone(self.tz).date()
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return [(midnight + timedelta(minutes=a), midnight + timedelta(minutes=b))
                for a, b in self._open(day)]

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant `seconds` of business time after `start`."""
        left = timedelta(seconds=seconds)
        cursor = start
        for _ in range(_MAX_DAYS):
            for a, b in self._spans(cursor):
                a = max(a, cursor)
                if a >= b:
                    continue
                if b - a >= left:
                    return (a + left).astimezone(UTC)
                left -= b - a
            cursor = self._next_day(cursor)
        raise ValueError("the business calendar has no open hours within three years")

    def between(self, start: datetime, end: datetime) -> float:
        """Business seconds in [start, end)."""
        total = 0.0
        cursor = start
        while cursor < end:
            for a, b in self._spans(cursor):
                a, b = max(a, cursor), min(b, end)
                if a < b:
                    total += (b - a).total_seconds()
            cursor = self._next_day(cursor)
        return total

    def _next_day(self, cursor: datetime) -> datetime:
        day = cursor.astimezone(self.tz).date() + timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=self.tz)


@dataclass(frozen=True)
class Policy:
    first_response: float | None  # business seconds; None: not measured
    resolution: float | None
    warn_at: float = 0.8  # fraction of the allowed time after which it is at risk


@dataclass(frozen=True)
class Plan:
    response_due: datetime | None
    resolution_due: datetime | None
    state: str  # "none" without a policy, else "ok"


@dataclass(frozen=True)
class Sla:
    calendar: Calendar
    policies: Mapping[str, Policy]  # priority -> policy

    def plan(self, priority: str, start: datetime) -> Plan:
        p = self.policies.get(priority)
        if p is None:
            return Plan(None, None, "none")
        return Plan(self._due(start, p.first_response), self._due(start, p.resolution), "ok")

    def _due(self, start: datetime, seconds: float | None) -> datetime | None:
        return None if seconds is None else self.calendar.add(start, seconds)

    def state(self, *, priority: str, created_at: datetime, now: datetime,
              response_due: datetime | None, resolution_due: datetime | None,
              responded: bool, resolved: bool) -> str:
        """ok, warning (past warn_at of an allowed time still running) or breached.
        The time used is what the allowed time lacks of the business time left until the
        due time, so time spent paused (the due time pushed back) is not counted."""
        p = self.policies.get(priority)
        if p is None:
            return "none"
        clocks = []
        if response_due is not None and not responded:
            clocks.append((p.first_response, response_due))
        if resolution_due is not None and not resolved:
            clocks.append((p.resolution, resolution_due))
        state = "ok"
        for allowed, due in clocks:
            if now >= due:
                return "breached"
            if allowed is not None and \
                    allowed - self.calendar.between(now, due) >= allowed * p.warn_at:
                state = "warning"
        return state
