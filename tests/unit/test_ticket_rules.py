"""The tickets file: every mistake named with file:line:column; rules match as written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ctl.errors import ConfigError
from ctl.tickets.model import TicketView
from ctl.tickets.rules import load

QUEUES = ("general", "tech", "billing")
GOOD = """\
timezone: Asia/Shanghai
business_hours: {mon-fri: "09:00-12:00,13:00-18:00", sat: "10:00-14:00"}
holidays: [2026-10-01]
sla:
  urgent: {first_response: 30m, resolution: 4h}
  normal: {first_response: 4h, resolution: 24h, warn_at: 0.75}
departments: {technical-support: tech}
fields: [{name: product, choices: [router, modem], required: true}, {name: serial}]
rules:
  - name: refunds go to billing
    when: [create]
    if: {text: REFUND, channel: [email, chat]}
    then: {department: billing, add_tags: [refund]}
    stop: true
  - name: never reached for refunds
    when: [create, update]
    then: {add_tags: [seen]}
  - name: router breaches escalate
    when: [sla_breach]
    if: {priority: [high, urgent], fields: {product: router}}
    then: {priority: urgent, department: technical-support, note: SLA breached}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tickets.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def ticket(**kw: object) -> TicketView:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    base: dict[str, object] = dict(
        id="x", number=1, subject="s", description="", status="new", priority="normal",
        category=None, department=None, assignee_id=None, customer_id=None, channel=None,
        source="api", task_contact_id=None, tags=[], fields={}, attachments=[], notify=True,
        created_at=now, updated_at=now, first_response_at=None, resolved_at=None,
        closed_at=None, response_due=None, resolution_due=None, sla_state="none", version=1)
    return TicketView(**{**base, **kw})  # type: ignore[arg-type]


def test_a_good_file(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, GOOD), QUEUES)
    assert cfg.departments == {"general": "general", "tech": "tech", "billing": "billing",
                               "technical-support": "tech"}
    assert cfg.sla.policies["urgent"].first_response == 1800
    assert cfg.sla.calendar.week[5] == ((600, 840),)
    refund = ticket(subject="Please refund me", channel="email")
    assert [r.name for r in cfg.rules.matching("create", refund)] == ["refunds go to billing"]
    assert [r.name for r in cfg.rules.matching("create", ticket(channel="voice",
                                                                subject="refund"))] == \
        ["never reached for refunds"]
    hot = ticket(priority="high", fields={"product": "router"})
    assert [r.name for r in cfg.rules.matching("sla_breach", hot)] == \
        ["router breaches escalate"]
    assert cfg.rules.matching("sla_breach", ticket(priority="high")) == []


@pytest.mark.parametrize(("replace", "by", "expected"), [
    ("timezone: Asia/Shanghai", "timezone: Mars/Olympus",
     ":1:11: timezone: unknown time zone 'Mars/Olympus'"),
    ('sat: "10:00-14:00"', 'sat: "10:00-25:00"',
     ":2:59: business_hours.sat: '10:00-25:00' is not a time range"),
    ("  urgent: {first", "  asap: {first", ":5:9: sla.asap: unknown priority"),
    ("first_response: 4h", "first_response: soon", ":6:28: sla.normal.first_response"),
    ("{technical-support: tech}", "{technical-support: techs}",
     ":7:34: departments.technical-support: no routing queue 'techs'"),
    ("    stop: true", "    halt: true", ":14:11: rules.0.halt: unknown key 'halt'"),
    ("when: [sla_breach]", "when: [sla_broken]", ":19:12: rules.2.when.0: Input should be"),
    ("then: {priority: urgent,", "then: {priority: asap,",
     ":21:22: rules.2.then.priority: unknown priority 'asap'"),
    ("department: technical-support,", "department: legal,",
     ":21:42: rules.2.then.department: unknown department 'legal'"),
    ("holidays: [2026-10-01]", "holidays: [2026-10-41]", ":3:12: holidays.0:"),
])
def test_errors_name_file_line_column(tmp_path: Path, replace: str, by: str,
                                      expected: str) -> None:
    assert replace in GOOD
    path = write(tmp_path, GOOD.replace(replace, by))
    with pytest.raises(ConfigError) as e:
        load(path, QUEUES)
    assert f"{path}{expected}" in str(e.value), str(e.value)


def test_invalid_yaml_and_unknown_template(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tickets.yaml:3:1: invalid YAML"):
        load(write(tmp_path, "rules:\n  - [unclosed\n"), QUEUES)
    text = GOOD.replace("add_tags: [refund]}", "add_tags: [refund], notify: recieved}")
    with pytest.raises(ConfigError, match=r":13:61: rules.0.then.notify: no template "
                                          r"'recieved'; templates: received, resolved"):
        load(write(tmp_path, text), QUEUES, templates={"received", "resolved"})


def test_the_example_file_is_valid() -> None:
    from ctl.store.db import PROJECT_DIR
    from ctl.tickets.notify import templates

    cfg = load(PROJECT_DIR / "examples/tickets/tickets.yaml", ["general"], templates())
    assert cfg.departments["technical-support"] == "general" and cfg.language == "zh-CN"
    assert templates() == {"received", "reply", "resolved", "status"}
