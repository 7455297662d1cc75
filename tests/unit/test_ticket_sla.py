"""Business-time arithmetic: weekends, holidays, lunch breaks, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from ctl.tickets.sla import Calendar, Policy, Sla

SH = ZoneInfo("Asia/Shanghai")
DAY = ((9 * 60, 12 * 60), (13 * 60, 18 * 60))  # 09:00-12:00, 13:00-18:00: 8 h
CAL = Calendar(SH, (DAY,) * 5 + ((), ()), frozenset({date(2026, 11, 30)}))  # a Monday off


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


def test_friday_evening_runs_over_the_weekend_and_the_holiday() -> None:
    friday = local(2026, 11, 27, 17, 30)
    assert CAL.add(friday, 2 * 3600) == local(2026, 12, 1, 10, 30).astimezone(UTC)
    assert CAL.between(friday, local(2026, 12, 1, 10, 30)) == 2 * 3600


def test_lunch_and_nights_do_not_count() -> None:
    assert CAL.add(local(2026, 11, 24, 11, 0), 2 * 3600) == \
        local(2026, 11, 24, 14, 0).astimezone(UTC)
    assert CAL.add(local(2026, 11, 24, 20, 0), 60) == local(2026, 11, 25, 9, 1).astimezone(UTC)
    assert CAL.between(local(2026, 11, 24, 0, 0), local(2026, 11, 25, 0, 0)) == 8 * 3600


def test_round_the_clock_is_plain_time() -> None:
    start = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    assert Calendar.always().add(start, 7200) == start + timedelta(hours=2)


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                    timezones=st.just(UTC)),
       st.integers(min_value=0, max_value=200 * 3600))
def test_add_and_between_agree(start: datetime, seconds: int) -> None:
    due = CAL.add(start, seconds)
    assert due >= start
    assert abs(CAL.between(start, due) - seconds) < 1e-6


def test_states_warning_then_breach() -> None:
    sla = Sla(CAL, {"high": Policy(first_response=3600, resolution=4 * 3600, warn_at=0.5)})
    created = local(2026, 11, 27, 16, 0)
    plan = sla.plan("high", created)
    assert plan.response_due == local(2026, 11, 27, 17, 0).astimezone(UTC)
    assert plan.resolution_due == local(2026, 12, 1, 11, 0).astimezone(UTC)

    def at(now: datetime, responded: bool = True) -> str:
        return sla.state(priority="high", created_at=created, now=now,
                         response_due=plan.response_due, resolution_due=plan.resolution_due,
                         responded=responded, resolved=False)

    assert at(local(2026, 11, 27, 16, 20), responded=False) == "ok"
    assert at(local(2026, 11, 27, 16, 31), responded=False) == "warning"
    assert at(local(2026, 11, 27, 17, 0), responded=False) == "breached"
    assert at(local(2026, 11, 27, 17, 59)) == "ok"
    assert at(local(2026, 11, 30, 12, 0)) == "warning"  # the holiday: still Friday's 18:00
    assert at(local(2026, 12, 1, 10, 59)) == "warning"
    assert at(local(2026, 12, 1, 11, 0)) == "breached"
    assert sla.plan("low", created).state == "none"


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                    timezones=st.just(UTC)),
       st.integers(min_value=0, max_value=100 * 3600),
       st.integers(min_value=0, max_value=30 * 24 * 3600))
def test_a_pause_keeps_the_business_time_left(paused: datetime, left: int, wait: int) -> None:
    """What ctl/tickets/pause.py relies on: pushing the due time back by the business time
    paused leaves, at the resumption, exactly the business time that was left at the pause."""
    due = CAL.add(paused, left)
    resumed = paused + timedelta(seconds=wait)
    pushed = CAL.add(due, CAL.between(paused, resumed))
    assert abs(CAL.between(resumed, pushed) - CAL.between(paused, due)) < 1e-6
