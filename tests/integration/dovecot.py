"""A private Dovecot IMAP server for the email tests: its own config, port and maildirs
in a temporary directory, started and stopped by the test (no system-wide config)."""

from __future__ import annotations

import contextlib
import grp
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.harness import free_port

CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@dataclass
class Dovecot:
    port: int
    user: str
    password: str
    dir: Path


@contextlib.contextmanager
def dovecot() -> Iterator[Dovecot]:
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        raise AssertionError("dovecot is not installed: apt-get install dovecot-imapd "
                             "(bootstrap.sh installs it)")
    # Not under pytest's 0700 tmp: the mail processes run as an unprivileged user.
    d = Path(tempfile.mkdtemp(prefix="ctl-dovecot-"))
    d.chmod(0o755)
    user = pwd.getpwnam("nobody")
    gid = grp.getgrnam("nogroup").gr_gid
    for sub in ("mail", "home"):
        (d / sub).mkdir()
        shutil.chown(d / sub, user.pw_uid, gid)
    box = Dovecot(free_port(), "support", "imap-test-secret", d)
    (d / "passwd").write_text(f"{box.user}:{{PLAIN}}{box.password}\n")
    conf = d / "dovecot.conf"
    conf.write_text(CONF.format(d=d, uid=user.pw_uid, gid=gid, port=box.port))
    proc = subprocess.Popen([binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _wait_listening(box.port, proc, d)
        yield box
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], d: Path) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            log = (d / "dovecot.log").read_text() if (d / "dovecot.log").exists() else ""
            raise AssertionError(f"dovecot exited {proc.returncode}: {err}\n{log}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("dovecot did not listen within 20 s")
