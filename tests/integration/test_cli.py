"""The `ctl` command on bad input: a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import PROJECT, free_port


def ctl(*args: str, env: dict[str, str] | None = None, cwd: Path = PROJECT
        ) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CTL_")}
    return subprocess.run([sys.executable, "-m", "ctl", *args], env={**full_env, **(env or {})},
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_malformed_settings_file_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("http_port: 8080\nasterisk:\n  sip_port: nope\n")
    r = ctl("--config", str(cfg), "doctor")
    assert r.returncode == 1
    assert f"{cfg}:3:13: asterisk.sip_port" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_asterisk_binary_is_named_with_a_fix(tmp_path: Path) -> None:
    r = ctl("asterisk", "up", env={"CTL_DATA_DIR": str(tmp_path),
                                   "CTL_ASTERISK__BINARY": "/nonexistent/asterisk"})
    assert r.returncode == 1
    assert "asterisk.binary '/nonexistent/asterisk' does not exist" in r.stderr
    assert "hint:" in r.stderr


def test_sip_port_in_use_is_reported_with_the_setting(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        r = ctl("asterisk", "up", env={
            "CTL_DATA_DIR": str(tmp_path), "CTL_ASTERISK__SIP_PORT": str(port),
            "CTL_ASTERISK__HTTP_PORT": str(free_port()),
            "CTL_ASTERISK__AMI_PORT": str(free_port())})
    assert r.returncode == 1
    assert f"port {port}/udp on 127.0.0.1 is already in use" in r.stderr
    assert "asterisk.sip_port" in r.stderr


def test_http_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = ctl("serve", env={"CTL_DATA_DIR": str(tmp_path), "CTL_HTTP_PORT": str(port),
                              "CTL_ASTERISK__HTTP_PORT": str(free_port())})
    assert r.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "CTL_HTTP_PORT" in r.stderr


def test_doctor_reports_an_unreachable_database_with_a_fix(tmp_path: Path) -> None:
    r = ctl("doctor", env={"CTL_DATA_DIR": str(tmp_path),
                           "CTL_DATABASE_URL": f"postgresql+asyncpg://u:secret@127.0.0.1:{free_port()}/x",
                           "CTL_ASTERISK__SIP_PORT": str(free_port()),
                           "CTL_ASTERISK__HTTP_PORT": str(free_port()),
                           "CTL_ASTERISK__AMI_PORT": str(free_port())})
    assert r.returncode == 1
    assert "[FAIL] database" in r.stdout
    assert "secret" not in r.stdout  # the password is not echoed
    assert "fix: start PostgreSQL or fix CTL_DATABASE_URL" in r.stdout


def test_secrets_are_generated_private_and_stable(tmp_path: Path) -> None:
    from ctl.asterisk.secrets import load_or_create

    first = load_or_create(tmp_path)
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert load_or_create(tmp_path) == first
    assert len({first.ari_password, first.ami_secret, first.session_key}) == 3
    assert load_or_create(tmp_path / "other") != first


def test_asterisk_lifecycle_through_the_cli(tmp_path: Path) -> None:
    env = {"CTL_DATA_DIR": str(tmp_path),
           "CTL_ASTERISK__SIP_PORT": str(free_port(socket.SOCK_DGRAM)),
           "CTL_ASTERISK__HTTP_PORT": str(free_port()),
           "CTL_ASTERISK__AMI_PORT": str(free_port()),
           "CTL_ASTERISK__RTP_START": "32700", "CTL_ASTERISK__RTP_END": "32719"}
    up = ctl("asterisk", "up", env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert "Asterisk is up" in up.stdout
        status = ctl("asterisk", "status", env=env)
        assert status.returncode == 0 and '"running": true' in status.stdout
        version = ctl("asterisk", "cli", "core", "show", "version", env=env)
        assert version.stdout.startswith("Asterisk 2"), version.stdout + version.stderr
        again = ctl("asterisk", "up", env=env)
        assert again.returncode == 1 and "already runs" in again.stderr
        listening = _listening_tcp()
        for port in (env["CTL_ASTERISK__HTTP_PORT"], env["CTL_ASTERISK__AMI_PORT"]):
            assert listening[int(port)] == {"127.0.0.1"}, "ARI/AMI must listen on loopback only"
    finally:
        down = ctl("asterisk", "down", env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert ctl("asterisk", "status", env=env).returncode == 3
    assert str(tmp_path) not in Path("/proc/mounts").read_text()


def _listening_tcp() -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state != "0A":  # LISTEN
            continue
        addr, port = local.split(":")
        ip = ".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0))
        out.setdefault(int(port, 16), set()).add(ip)
    return out


async def test_up_creates_a_first_admin_once(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`ctl up` on an empty database makes `admin` (every queue) with a generated password
    kept private for the operator; with any agent there it adds nobody."""
    import asyncio

    for name in [n for n in os.environ if n.startswith("CTL_")]:  # the shared controller's
        monkeypatch.delenv(name)  # settings, if set up already: the environment wins

    from ctl.agents.auth import verify_password
    from ctl.agents.service import AgentService
    from ctl.cli import _first_admin
    from ctl.settings import load_settings
    from ctl.store.db import Database, migrate

    settings = load_settings(data_dir=tmp_path)
    await asyncio.to_thread(migrate, settings.db_url)
    db = Database(settings.db_url)
    try:
        agents = AgentService(db)
        await _first_admin(agents, settings)
        kept = tmp_path / "admin-password"
        assert kept.stat().st_mode & 0o777 == 0o600
        password = kept.read_text().strip()
        admin = await agents.get("admin")
        assert admin.role == "admin" and verify_password(password, admin.password_hash)
        assert {p["queue"] for p in admin.profile} == {q.name for q in settings.routing.queues}
        await _first_admin(agents, settings)
        assert [a.username for a in await agents.list()] == ["admin"]
        assert kept.read_text().strip() == password
    finally:
        await db.close()
