"""Verbs through the simulator (the runner and verbs callers meet, with scripted input)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ctl.ivr.flow import Flow, parse
from ctl.ivr.registry import load_folder
from ctl.ivr.simulate import Result, Script, coverage, load_script, simulate
from ctl.ivr.validate import Known

ROOT = Path(__file__).resolve().parents[2]


def flow(steps: str, languages: str = "[en]") -> dict[str, Flow]:
    f = parse(f"name: t\nlanguages: {languages}\nstart: a\nsteps:\n{steps}", Path("t.yaml"))
    return {"t": f}


async def sim(steps: str, inputs: list[str] | None = None, **script: Any) -> Result:
    return await simulate(flow(steps), "t", Script(inputs=inputs or [], **script))


async def test_menu_retries_then_branches_on_no_match() -> None:
    steps = """  a:
    menu: {prompt: "Press 1", choices: {"1": b}, retries: 1, no_match: "Wrong key"}
    on: {no_match: c}
  b: {say: "one"}
  c: {say: "gave up"}
"""
    r = await sim(steps, ["7", "9"])
    assert r.path == ["t:a", "t:c"]
    assert r.said == ["[en] Press 1", "[en] Wrong key", "[en] Press 1", "[en] gave up"]
    assert (await sim(steps, ["", "1"])).path == ["t:a", "t:b"]


async def test_menu_choice_sets_the_language_of_later_prompts() -> None:
    steps = """  a:
    menu: {prompt: [{say: "Press 2", language: en}],
           choices: {"2": {next: b, set: {language: zh-CN}}}}
  b: {say: {en: "Hello", zh-CN: "你好"}}
"""
    r = await simulate(flow(steps, "[en, zh-CN]"), "t", Script(inputs=["2"]))
    assert r.said[-1] == "[zh-CN] 你好" and r.vars["language"] == "zh-CN"


async def test_collect_validates_and_keeps_the_digits() -> None:
    steps = """  a:
    collect: {prompt: "Order?", into: order, min_digits: 5, pattern: "[1-9][0-9]*",
              valid: "order | int % 2 == 1", retries: 2}
    on: {invalid: bad}
    next: ok
  ok: {say: "Order {{ order }}"}
  bad: {say: "bad"}
"""
    r = await sim(steps, ["0123#", "12#", "12345#"])
    assert r.path == ["t:a", "t:ok"] and r.vars["order"] == "12345"
    assert (await sim(steps, ["12344#", "01111", "22222#"])).path == ["t:a", "t:bad"]


async def test_listen_maps_words_and_keys_to_intents() -> None:
    steps = """  a:
    listen:
      prompt: "How can I help?"
      intents:
        refund: {phrases: [i want a refund, money back], dtmf: "2", next: r}
        agent: {phrases: [agent, operator], next: g}
    on: {no_match: n, no_input: n}
  r: {say: refund}
  g: {say: agent}
  n: {say: nothing}
"""
    assert (await sim(steps, ["say: I want a refund please"])).path[-1] == "t:r"
    assert (await sim(steps, ["2"])).path[-1] == "t:r"
    assert (await sim(steps, ["say: operator"])).path[-1] == "t:g"
    r = await sim(steps, ["say: purple elephants", "", "say: pizza"])
    assert r.path[-1] == "t:n"


async def test_branch_uses_variables_and_the_clock() -> None:
    steps = """  a:
    branch:
      cases: [{when: "customer.tier == 'vip'", next: vip}, {when: "now.hour < 12", next: am}]
      otherwise: pm
  vip: {say: vip}
  am: {say: morning}
  pm: {say: afternoon}
"""
    morning = datetime(2026, 11, 24, 9, tzinfo=UTC)
    assert (await sim(steps, now=morning)).path[-1] == "t:am"
    assert (await sim(steps, now=morning.replace(hour=15))).path[-1] == "t:pm"
    assert (await sim(steps, now=morning, vars={"customer": {"tier": "vip"}})).path[-1] == "t:vip"


@pytest.mark.parametrize(("when", "state"), [
    ("2026-11-24T09:30:00+08:00", "open"),      # Tuesday morning in Shanghai
    ("2026-11-24T12:30:00+08:00", "closed"),    # lunch break
    ("2026-11-28T10:00:00+08:00", "closed"),    # Saturday
    ("2026-11-24T01:30:00Z", "open"),           # 09:30 in Shanghai, given in UTC
    ("2026-12-25T10:00:00+08:00", "closed"),    # a holiday without its own branch
])
async def test_hours_in_the_time_zone_with_holidays(when: str, state: str) -> None:
    steps = """  a:
    hours: {timezone: Asia/Shanghai, open: {mon-fri: ["09:00-12:00", "13:00-18:00"]},
            holidays: [2026-12-25]}
    on: {open: o, closed: c}
  o: {say: open}
  c: {say: closed}
"""
    r = await sim(steps, now=datetime.fromisoformat(when))
    assert r.path[-1] == ("t:o" if state == "open" else "t:c")


async def test_http_retries_a_failing_server_then_reads_json() -> None:
    calls: list[str] = []

    async def orders(request: web.Request) -> web.Response:
        calls.append(request.match_info["n"])
        if len(calls) == 1:
            return web.Response(status=503)
        return web.json_response({"status": "shipped", "body": await request.json()})

    app = web.Application()
    app.router.add_post("/orders/{n}", orders)
    async with TestServer(app) as server:
        url = str(server.make_url("/orders"))
        steps = f"""  a:
    http: {{url: "{url}/{{{{ n }}}}", method: POST, body: {{n: "= n * 2"}}, retries: 1}}
    on: {{error: e}}
    next: ok
  ok: {{say: "{{{{ http.body.status }}}} {{{{ http.body.body.n }}}}"}}
  e: {{say: error}}
"""
        r = await sim(steps, vars={"n": 21})
    assert calls == ["21", "21"]
    assert r.said == ["[en] shipped 42"]


async def test_http_error_branch_when_the_server_is_down() -> None:
    steps = """  a:
    http: {url: "http://127.0.0.1:9/x", timeout: 1, retries: 0}
    on: {error: e}
  e: {say: "error {{ http.status }}"}
"""
    assert (await sim(steps)).said == ["[en] error 0"]


async def test_subflow_returns_goto_jumps_and_hangup_ends_everything() -> None:
    main = parse("name: m\nstart: a\nsteps:\n  a: {subflow: s}\n  b: {say: back}\n"
                 .replace("{subflow: s}", "{subflow: s, next: b}"), Path("m.yaml"))
    sub = parse("name: s\nstart: x\nsteps:\n  x: {say: inside}\n", Path("s.yaml"))
    r = await simulate({"m": main, "s": sub}, "m", Script())
    assert r.path == ["m:a", "s:x", "m:b"]
    dead = parse("name: s\nstart: x\nsteps:\n  x: {hangup: bye}\n", Path("s.yaml"))
    r = await simulate({"m": main, "s": dead}, "m", Script())
    assert r.path == ["m:a", "s:x"] and r.hung_up


async def test_enqueue_outcomes_and_computed_priority() -> None:
    steps = """  a:
    enqueue: {queue: general, priority: "= 10 if customer.tier == 'vip' else 0",
              steps: [{skills: {refunds: 2}, languages: ["{{ language }}"], expires_after: 30}]}
    on: {overflow: vm, callback: cb, completed: done}
  vm: {say: voicemail}
  cb: {say: callback}
  done: {say: done}
"""
    r = await sim(steps, vars={"customer": {"tier": "vip"}}, enqueue="overflow")
    assert r.path[-1] == "t:vm"
    kind, data = r.events[0]
    assert kind == "enqueued" and data["priority"] == 10
    assert data["steps"] == ({"skills": {"refunds": 2}, "languages": ["en"],
                              "expires_after": 30},)
    assert (await sim(steps, enqueue="callback")).path[-1] == "t:cb"


async def test_survey_keeps_the_score_and_record_opens_a_ticket() -> None:
    steps = """  a:
    survey: {prompt: "Rate 1-5"}
    next: b
  b:
    record: {ticket: {subject: "VM from {{ caller }}"}}
"""
    r = await sim(steps, ["9", "4", "(speech)"], caller="+15550123")
    assert r.vars["csat"] == 4
    ticket = next(d for k, d in r.events if k == "ticket")
    assert ticket["subject"] == "VM from +15550123" and ticket["attachments"]


async def test_demo_simulations_cover_every_step_of_every_demo_flow() -> None:
    flows, errors = load_folder(ROOT / "ivr_flows", Known())
    assert not errors
    results = []
    for path in sorted((ROOT / "ivr_flows" / "simulations").glob("*.yaml")):
        script = load_script(path)
        result = await simulate(flows, script.flow or "main", script)
        assert not result.unused_inputs, path
        results.append(result)
    assert {n: missing for n, (_, _, missing) in coverage(flows, results).items()} == \
        {n: [] for n in flows}
