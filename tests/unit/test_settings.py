from __future__ import annotations

from pathlib import Path

import pytest

from ctl.errors import ConfigError
from ctl.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ctl.yaml"
    p.write_text(text)
    return p


def test_defaults_then_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.delenv("CTL_HTTP_PORT", raising=False)
    cfg = write(tmp_path, "http_port: 9001\nasterisk:\n  sip_port: 5070\n")
    s = load_settings(cfg)
    assert (s.http_port, s.asterisk.sip_port, s.asterisk.ami_port) == (9001, 5070, 5038)
    monkeypatch.setenv("CTL_HTTP_PORT", "9002")
    monkeypatch.setenv("CTL_ASTERISK__AMI_PORT", "6000")
    s = load_settings(cfg)
    assert (s.http_port, s.asterisk.sip_port, s.asterisk.ami_port) == (9002, 5070, 6000)


def test_errors_name_file_line_and_column(tmp_path: Path) -> None:
    cfg = write(tmp_path, "http_port: 8080\nasterisk:\n  sip_port: 99999\n  bogus: 1\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    msg = str(e.value)
    assert f"{cfg}:3:13: asterisk.sip_port" in msg
    assert "less than or equal to 65535" in msg
    assert f"{cfg}:4:10: asterisk.bogus: unknown setting" in msg


def test_environment_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTL_HTTP_PORT", "eighty")
    with pytest.raises(ConfigError, match="environment CTL_HTTP_PORT: http_port"):
        load_settings()


def test_broken_yaml_names_the_place(tmp_path: Path) -> None:
    cfg = write(tmp_path, "asterisk:\n  sip_port: [1, 2\n")
    with pytest.raises(ConfigError, match=rf"{cfg}:\d+:\d+: invalid YAML"):
        load_settings(cfg)


def test_trunk_dids_must_be_numbers(tmp_path: Path) -> None:
    cfg = write(tmp_path, "trunks:\n  - name: c1\n    host: 127.0.0.2\n    dids: {sales: demo}\n")
    with pytest.raises(ConfigError, match=r"ctl.yaml:4:\d+: trunks.0.dids.*not a phone number"):
        load_settings(cfg)


def test_settings_file_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_settings(write(tmp_path, "- 1\n- 2\n"))


def test_routing_queues_are_checked_where_they_are_written(tmp_path: Path) -> None:
    cfg = write(tmp_path, "routing:\n  queues:\n    - name: a\n      overflow: {kind: queue, "
                          "target: b}\n    - name: b\n      overflow: {kind: queue, target: a}\n")
    with pytest.raises(ConfigError, match=r"ctl.yaml:\d+:\d+: routing.queues.*in a loop: "
                                          r"a -> b -> a"):
        load_settings(cfg)
    cfg = write(tmp_path, "routing:\n  queues:\n    - name: a\n      policy: fastest\n")
    with pytest.raises(ConfigError, match=r"ctl.yaml:4:15: routing.queues.0.policy"):
        load_settings(cfg)
    cfg = write(tmp_path, "routing:\n  queues:\n    - name: a\n      steps:\n"
                          "        - {skills: {billing: 7}}\n")
    with pytest.raises(ConfigError, match=r"ctl.yaml:\d+:\d+: .*billing.*outside 1..5"):
        load_settings(cfg)


def test_queue_times_take_units_like_scenarios(tmp_path: Path) -> None:
    """Queues and steps have one schema for the settings file and `ctl simulate`."""
    cfg = write(tmp_path, "routing:\n  queues:\n    - name: a\n      max_wait: 2m\n"
                          "      wrapup_seconds: 30s\n      steps:\n"
                          "        - {skills: {billing: 2}, expires_after: 1m30s}\n")
    q = load_settings(cfg).routing.queues[0]
    assert (q.max_wait, q.wrapup_seconds, q.steps[0].expires_after) == (120.0, 30.0, 90.0)
    cfg = write(tmp_path, "routing:\n  queues:\n    - name: a\n      max_wait: soon\n")
    with pytest.raises(ConfigError, match=r"ctl.yaml:4:17: routing.queues.0.max_wait: .*"
                                          r"'soon' is not a time"):
        load_settings(cfg)


@pytest.mark.parametrize("number", ["1000", "1101", "1990", "1999", "12a"])
def test_ivr_numbers_keep_off_the_reserved_extensions(tmp_path: Path, number: str) -> None:
    cfg = write(tmp_path, f"ivr:\n  numbers: {{'{number}': main}}\n")
    with pytest.raises(ConfigError, match=rf"ctl.yaml:2:\d+: ivr.numbers.*'{number}'"):
        load_settings(cfg)
