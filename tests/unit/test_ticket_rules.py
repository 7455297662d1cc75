"""The tickets file: every mistake named with file:line:column; rules match as written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctl.errors import ConfigError
from ctl.tickets.model import TicketView
from ctl.tickets.rules import Action, Condition, Rule, Rules, load

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


def _naive(rules: list[Rule], event: str, t: TicketView) -> list[str]:
    """The reference: every condition of every rule read as written."""
    out = []
    for r in rules:
        c = r.condition
        ok = event in r.on
        for name in ("priority", "status", "category", "department", "channel", "source"):
            want = getattr(c, name)
            if want is not None:
                ok = ok and getattr(t, name) in ([want] if isinstance(want, str) else want)
        if c.tag is not None:
            ok = ok and c.tag in t.tags
        if c.text is not None:
            needle = c.text.casefold()
            ok = ok and (needle in t.subject.casefold() or needle in t.description.casefold())
        ok = ok and all(t.fields.get(k) == v for k, v in (c.fields or {}).items())
        if ok:
            out.append(r.name)
            if r.stop:
                break
    return out


_PRIO = st.sampled_from(["low", "normal", "high", "urgent"])
_DEPT = st.sampled_from(["a", "b", "c"])
_CONDITION = st.builds(
    Condition,
    priority=st.none() | _PRIO | st.lists(_PRIO, min_size=1, max_size=3),
    department=st.none() | _DEPT | st.lists(_DEPT, max_size=2),
    channel=st.none() | st.sampled_from(["email", "voice"]),
    tag=st.none() | st.sampled_from(["x", "y"]),
    text=st.none() | st.sampled_from(["Router", "bill", "ß"]),
    fields=st.none() | st.dictionaries(st.sampled_from(["p", "q"]), st.integers(0, 2),
                                       max_size=2))
_RULE = st.builds(Rule, name=st.text(min_size=1, max_size=5),
                  on=st.frozensets(st.sampled_from(["create", "update"]), min_size=1),
                  condition=_CONDITION, then=st.just(Action()), stop=st.booleans())


@given(st.lists(_RULE, max_size=12), st.lists(st.fixed_dictionaries({
    "priority": _PRIO, "department": st.none() | _DEPT,
    "channel": st.none() | st.sampled_from(["email", "voice", "sms"]),
    "tags": st.lists(st.sampled_from(["x", "y", "z"]), max_size=2),
    "subject": st.sampled_from(["router down", "BILLING", "Strasse", "x"]),
    "fields": st.dictionaries(st.sampled_from(["p", "q"]), st.integers(0, 2), max_size=2),
}), min_size=1, max_size=5), st.sampled_from(["create", "update"]))
def test_compiled_rules_match_like_the_rules_read_as_written(
        rules: list[Rule], tickets: list[dict[str, object]], event: str) -> None:
    compiled = Rules(rules)
    for fields in tickets:
        t = ticket(**fields)
        assert [r.name for r in compiled.matching(event, t)] == _naive(rules, event, t)
