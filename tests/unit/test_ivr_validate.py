"""Flow validation: every bad fixture fails with its expected message at its place, the
good ones and the demo flows pass, and the published JSON Schema accepts the demo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from ctl.errors import ConfigError
from ctl.ivr import schema
from ctl.ivr.flow import parse
from ctl.ivr.registry import load_folder
from ctl.ivr.validate import Known, check
from ctl.ivr.verbs import VERBS
from ctl.yamlloc import Yaml12Loader

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "flows"
KNOWN = Known(queues=frozenset({"general", "billing"}),
              skills=frozenset({"refunds", "support"}),
              flows=frozenset({"order-status", "after-hours", "main"}))


def _check(path: Path) -> None:
    check(parse(path.read_text(encoding="utf-8"), path), KNOWN)


@pytest.mark.parametrize("path", sorted((FIXTURES / "bad").glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_flow_is_rejected_with_its_place(path: Path) -> None:
    expect = re.match(r"# expect: (.*)", path.read_text(encoding="utf-8"))
    assert expect, f"{path} needs a '# expect: ...' first line"
    with pytest.raises(ConfigError) as e:
        _check(path)
    wanted = expect.group(1).strip()
    message = str(e.value)
    if re.match(r"\d+:\d+: ", wanted):  # line:column given: it must be that place
        assert f"{path}:{wanted}" in message, message
    else:
        assert wanted in message and str(path) in message, message


@pytest.mark.parametrize("path", sorted((FIXTURES / "good").glob("*.yaml")), ids=lambda p: p.stem)
def test_good_flow_passes(path: Path) -> None:
    _check(path)


def test_demo_flows_pass_and_use_every_check() -> None:
    flows, errors = load_folder(ROOT / "ivr_flows", Known(queues=frozenset({"general"})))
    assert not errors
    assert set(flows) == {"main", "order-status", "after-hours"}
    assert flows["main"].languages == ("en", "zh-CN")


def test_every_verb_is_used_by_the_good_fixture() -> None:
    flow = parse((FIXTURES / "good" / "every-verb.yaml").read_text(), Path("every-verb.yaml"))
    assert {s.verb.name for s in flow.steps.values()} == set(VERBS)


def test_published_schema_is_current_and_accepts_the_demo() -> None:
    published = json.loads((ROOT / "ivr_flows" / schema.SCHEMA_NAME).read_text())
    assert published == schema.flow_schema(), "run: ctl flows schema"
    for path in (ROOT / "ivr_flows").glob("*.yaml"):
        data = json.loads(json.dumps(yaml.load(path.read_text(), Loader=Yaml12Loader),
                                     default=str))
        jsonschema.validate(data, published)
        assert path.read_text().startswith("# yaml-language-server: $schema=./flow.schema.json")


def test_schema_rejects_an_unknown_key_in_a_step() -> None:
    bad = {"name": "x", "start": "a", "steps": {"a": {"say": "hi", "nxt": "a"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema.flow_schema())


def test_a_broken_file_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("name: ok\nstart: a\nsteps:\n  a: {hangup: }\n")
    (tmp_path / "broken.yaml").write_text("name: broken\nstart: a\nsteps:\n  a: {sey: hi}\n")
    (tmp_path / "dup.yaml").write_text("name: ok\nstart: a\nsteps:\n  a: {hangup: }\n")
    flows, errors = load_folder(tmp_path, Known())
    assert set(flows) == {"ok"}
    assert len(errors) == 2
    assert any("unknown verb 'sey'" in str(e) for e in errors)
    assert any("also defined" in str(e) for e in errors)


def test_yaml_12_booleans_keep_on_a_key() -> None:
    flow = parse("name: x\nstart: a\nsteps:\n  a:\n    menu: {prompt: p, choices: {'1': a}}\n"
                 "    on: {no_input: a}\n", Path("x.yaml"))
    assert flow.steps["a"].on == {"no_input": "a"}


def test_the_benchmark_menu_passes() -> None:
    flows, errors = load_folder(ROOT / "bench" / "flows", Known())
    assert not errors
    assert flows["bench-menu"].steps["menu"].verb.targets() == {"1": "thanks"}
