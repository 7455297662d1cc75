"""The resolution clock pauses while the customer owes an answer (real SQLite and
PostgreSQL, the service's virtual clock over a weekend in business hours)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ctl.store.db import Database
from ctl.tickets.automation import Automation
from ctl.tickets.rules import load
from ctl.tickets.search import Filters
from ctl.tickets.service import TicketService
from tests.integration.tickets_db import ticket_db

__all__ = ["ticket_db"]
SH = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)  # type: ignore[misc]


class Clock:
    def __init__(self) -> None:
        self.now = local(2026, 11, 27, 15, 0)  # a Friday

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def setup(ticket_db: Database, tmp_path: Path) -> tuple[TicketService, Automation, Clock]:
    path = tmp_path / "tickets.yaml"
    path.write_text("timezone: Asia/Shanghai\nbusiness_hours: {mon-fri: '09:00-18:00'}\n"
                    "sla:\n  high: {first_response: 1h, resolution: 4h, warn_at: 0.5}\n",
                    encoding="utf-8")
    clock = Clock()
    svc = TicketService(ticket_db, config=load(path, []), clock=clock)
    return svc, Automation(svc), clock


async def test_a_weekend_paused_pushes_the_due_time_by_the_paused_business_time(
        setup: tuple[TicketService, Automation, Clock]) -> None:
    svc, auto, clock = setup
    cal = svc.config.sla.calendar
    waiting = await svc.note((await svc.create(subject="pause", priority="high")).id,
                             "which model is it?", public=True)
    control = await svc.note((await svc.create(subject="runs", priority="high")).id,
                             "looking", public=True)
    due = local(2026, 11, 30, 10, 0)  # Fri 15-18 and Mon 9-10
    assert waiting.resolution_due == control.resolution_due == due

    clock.now = paused_at = local(2026, 11, 27, 17, 0)
    waiting = await svc.move(waiting.id, "pending_customer", reason="asked the model")
    assert waiting.sla_state == "paused"
    found = await svc.search(Filters.from_query({"sla_state": "paused"}))
    assert waiting.id in {t.id for t in found}

    clock.now = local(2026, 12, 1, 12, 0)  # Tuesday: the weekend and Monday went by
    assert (control.number, "breached") in await auto.sweep()  # the sweep does fire
    assert waiting.id not in {t.id for t in await svc.running_clocks(clock.now)}
    assert (await svc.get(waiting.id)).sla_state == "paused"  # never breached while paused

    resumed = await svc.customer_reply(waiting.id, "it is the X200")
    assert resumed.status == "open" and resumed.sla_state == "ok"
    # 2 of the 4 hours were left at Friday 17:00: they run from Tuesday 12:00 on
    assert resumed.resolution_due == local(2026, 12, 1, 14, 0)
    assert cal.between(due, resumed.resolution_due) == cal.between(paused_at, clock.now) \
        == 13 * 3600  # Fri 17-18, Mon 9-18, Tue 9-12
    kinds = [e["kind"] for e in await svc.history(waiting.id)]
    assert kinds[-3:] == ["customer_reply", "status", "sla_resumed"]
    assert kinds.count("sla_paused") == kinds.count("sla_resumed") == 1

    clock.now = local(2026, 12, 1, 13, 0)  # 3 of 4 hours used: past warn_at 0.5
    assert await auto.sweep() == [(waiting.number, "warning")]
    clock.now = local(2026, 12, 1, 14, 0)
    assert await auto.sweep() == [(waiting.number, "breached")]


async def test_a_priority_change_keeps_the_pauses_and_a_wait_without_policy_is_no_pause(
        setup: tuple[TicketService, Automation, Clock]) -> None:
    svc, _, clock = setup
    t = await svc.create(subject="re-planned", priority="high")
    clock.now = local(2026, 11, 27, 16, 0)
    await svc.move(t.id, "pending_customer")
    clock.now = local(2026, 11, 30, 10, 0)  # 3 business hours paused (Fri 16-18, Mon 9-10)
    t = await svc.move(t.id, "open")
    assert t.resolution_due == local(2026, 11, 30, 13, 0)
    t = await svc.update(t.id, {"priority": "low"})
    assert (t.sla_state, t.resolution_due) == ("none", None)
    await svc.move(t.id, "pending_customer")
    assert (await svc.get(t.id)).sla_state == "none"
    t = await svc.update(t.id, {"priority": "high"})  # re-planned while waiting
    assert t.resolution_due == local(2026, 11, 30, 13, 0)
    t = await svc.move(t.id, "open")  # that wait paused nothing: no policy when it began
    assert t.resolution_due == local(2026, 11, 30, 13, 0)
