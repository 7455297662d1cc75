from __future__ import annotations

import stat
from pathlib import Path

from ctl.asterisk import config, webrtc
from ctl.asterisk.provision import Installation
from ctl.asterisk.secrets import load_or_create
from ctl.settings import load_settings


def render(tmp_path: Path, **overrides: object) -> Path:
    settings = load_settings(data_dir=tmp_path, **overrides)
    inst = Installation("/usr/sbin/asterisk", None, None, None)
    lay = config.render_all(settings, inst, load_or_create(tmp_path))
    return lay.host("etc")


def test_ari_and_ami_listen_on_loopback_with_generated_secrets(tmp_path: Path) -> None:
    etc = render(tmp_path)
    secrets = load_or_create(tmp_path)
    assert "bindaddr = 127.0.0.1" in (etc / "http.conf").read_text()
    manager = (etc / "manager.conf").read_text()
    assert "bindaddr = 127.0.0.1" in manager
    assert f"secret = {secrets.ami_secret}" in manager
    assert f"password = {secrets.ari_password}" in (etc / "ari.conf").read_text()
    for name in ("ari.conf", "manager.conf", "pjsip.conf"):
        assert stat.S_IMODE((etc / name).stat().st_mode) == 0o640


def test_anonymous_callers_only_while_sip_is_on_loopback(tmp_path: Path) -> None:
    assert "[anonymous]" in (render(tmp_path / "a") / "pjsip.conf").read_text()
    public = render(tmp_path / "b", asterisk={"sip_host": "0.0.0.0"})
    assert "[anonymous]" not in (public / "pjsip.conf").read_text()


def test_trunk_dids_map_to_flows(tmp_path: Path) -> None:
    etc = render(tmp_path, trunks=[{"name": "carrier", "host": "127.0.0.2",
                                    "dids": {"+15550100": "sales"}}])
    dialplan = (etc / "extensions.conf").read_text()
    assert "[from-trunk-carrier]" in dialplan
    assert "exten => +15550100,1,Set(CTL_FLOW=sales)" in dialplan
    assert "match = 127.0.0.2" in (etc / "pjsip_trunks.conf").read_text()


def test_the_ivr_benchmark_menu_has_a_dialplan_twin(tmp_path: Path) -> None:
    dialplan = (render(tmp_path) / "extensions.conf").read_text()
    public = dialplan.split("[public]", 1)[1].split("\n[", 1)[0]
    assert "exten => 1990,1,Goto(bench-menu,s,1)" in public
    menu = dialplan.split("[bench-menu]", 1)[1].split("\n[", 1)[0]
    assert "Background(hello-world)" in menu and "WaitExten(5)" in menu
    assert "exten => 1,1,Playback(auth-thankyou)" in menu


def test_agents_get_a_browser_endpoint_with_a_derived_password(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    inst = Installation("/usr/sbin/asterisk", None, None, None)
    secrets = load_or_create(tmp_path)
    ha1 = "0" * 32
    agent = config.AgentEndpoint("agent-ann", "Ann", "2001", ha1, username="ann")
    etc = config.render_all(settings, inst, secrets, [agent]).host("etc")
    pjsip = (etc / "pjsip_agents.conf").read_text()
    web = pjsip.split("[webrtc-ann]\ntype = endpoint", 1)[1].split("\n\n", 1)[0]
    assert "webrtc = yes" in web and "transport = transport-ws" in web
    assert f"dtls_cert_file = {tmp_path.resolve()}/asterisk/lib/keys/dtls-cert.pem" in web
    # Only the HA1 of the derived password is written; a new desk HA1 changes it.
    password = webrtc.password(secrets.webrtc_key, "ann", ha1)
    assert password not in pjsip
    assert f"password_digest = MD5:{webrtc.ha1(secrets.webrtc_key, 'ann', ha1)}" in pjsip
    assert webrtc.password(secrets.webrtc_key, "ann", "1" * 32) != password
    assert webrtc.password(load_or_create(tmp_path / "other").webrtc_key, "ann", ha1) != password
    assert "[transport-ws]" in (etc / "pjsip.conf").read_text()
    # Calls between agents ring both phones.
    assert "Dial(PJSIP/agent-ann&PJSIP/webrtc-ann,30)" in (etc / "extensions.conf").read_text()


def test_the_dtls_certificate_is_made_once_and_its_key_kept_private(tmp_path: Path) -> None:
    keys = render(tmp_path).parent / "lib" / "keys"
    cert, key = (keys / webrtc.CERT).read_bytes(), keys / webrtc.KEY
    assert b"BEGIN CERTIFICATE" in cert
    assert stat.S_IMODE(key.stat().st_mode) == 0o640
    render(tmp_path)
    assert (keys / webrtc.CERT).read_bytes() == cert  # kept: browsers may have seen it
    assert (keys / webrtc.CERT).read_bytes() != (render(tmp_path / "b").parent / "lib" / "keys"
                                                 / webrtc.CERT).read_bytes()
