"""The softphone's ICE servers (asterisk.ice_servers): checked when the settings load,
handed to each agent's browser with fixed or TURN REST credentials."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ctl.agents import ice
from ctl.errors import ConfigError
from ctl.settings import load_settings


def settings_with(tmp_path: Path, servers: str) -> list[ice.IceServer]:
    cfg = tmp_path / "ctl.yaml"
    cfg.write_text(f"asterisk:\n  ice_servers:\n{servers}")
    return load_settings(cfg).asterisk.ice_servers


def test_rest_credentials_are_the_turn_rest_convention() -> None:
    # The expected password is openssl's: printf '1700086400:webrtc-ann' |
    # openssl dgst -sha1 -hmac north-wind -binary | base64
    assert ice.rest_credentials("north-wind", "webrtc-ann", 86400, now=1700000000) == (
        "1700086400:webrtc-ann", "vqKn2ZHJN21faPAZnFa65yq7mpA=")


def test_each_agent_gets_its_own_expiring_turn_credentials(tmp_path: Path) -> None:
    servers = settings_with(tmp_path, """\
    - urls: ["stun:stun.example.com:3478"]
    - urls: ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"]
      secret: north-wind
      ttl: 2h
    - urls: ["turn:old.example.com"]
      username: desk
      credential: s3cret
""")
    ann, bob = ice.for_browser(servers, "webrtc-ann"), ice.for_browser(servers, "webrtc-bob")
    assert ann[0] == {"urls": ["stun:stun.example.com:3478"]}
    assert ann[1]["urls"] == ["turn:turn.example.com:3478?transport=udp",
                              "turns:turn.example.com:5349"]
    expiry, _, user = ann[1]["username"].partition(":")
    assert user == "webrtc-ann" and bob[1]["username"].endswith(":webrtc-bob")
    assert ann[1]["credential"] != bob[1]["credential"]
    assert 7100 < int(expiry) - time.time() <= 7200  # ttl: 2h from now
    assert ann[2] == {"urls": ["turn:old.example.com"], "username": "desk",
                      "credential": "s3cret"}
    assert ice.refresh_after(servers) == 3600.0
    assert ice.refresh_after(servers[:1]) is None


@pytest.mark.parametrize(("servers", "error"), [
    ('    - urls: ["http://stun.example.com"]\n', "use stun:, stuns:, turn: or turns:"),
    ('    - urls: ["turn:turn.example.com"]\n', "needs username and credential, or secret"),
    ('    - urls: ["turn:t.example.com"]\n      username: a\n',
     "username needs its credential"),
    ('    - urls: ["turn:t.example.com"]\n      secret: s\n      username: a\n'
     '      credential: b\n', "either username and credential, or secret"),
    ("    - urls: []\n", "at least 1 item"),
])
def test_wrong_servers_are_refused_when_the_settings_load(tmp_path: Path, servers: str,
                                                          error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        settings_with(tmp_path, servers)


def test_servers_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTL_ASTERISK__ICE_SERVERS",
                       '[{"urls": ["stun:127.0.0.1:3478"]}]')
    assert load_settings().asterisk.ice_servers[0].urls == ["stun:127.0.0.1:3478"]
