"""Provisioning the Asterisk root when several ctl processes start at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ctl.asterisk import provision
from ctl.settings import AsteriskSettings

# Holds the build lock as a builder would, then leaves a finished root and lets go.
_BUILDER = """
import fcntl, sys
from pathlib import Path
root = Path(sys.argv[1])
with open(root.with_name(root.name + ".lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    print("building", flush=True)
    sys.stdin.readline()
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("asterisk:x:105:109::/var/lib/asterisk:/bin/false\\n")
    (root / ".ctl-root").write_text("asterisk\\n")
"""


def _blocked_on(path: Path) -> bool:
    """A process waits for the flock of `path` (/proc/locks lists waiters with '->')."""
    inode = f":{os.stat(path).st_ino} "
    return any("->" in line and inode in line
               for line in Path("/proc/locks").read_text().splitlines())


def test_a_process_waits_for_the_root_another_is_building(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no asterisk installed on the host
    # If ensure() did not wait it would build, and debootstrap fails fast on this mirror.
    cfg = AsteriskSettings(root=tmp_path / "asterisk-sid", mirror="http://127.0.0.1:9/debian")
    builder = subprocess.Popen([sys.executable, "-c", _BUILDER, str(cfg.root)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert builder.stdin is not None and builder.stdout is not None
    try:
        assert builder.stdout.readline() == "building\n"
        result: list[object] = []
        waiter = threading.Thread(target=lambda: result.append(_ensure(cfg)))
        waiter.start()
        deadline = time.monotonic() + 10
        while not _blocked_on(cfg.root.with_name("asterisk-sid.lock")):
            assert waiter.is_alive(), f"ensure() did not wait for the builder: {result}"
            assert time.monotonic() < deadline, "ensure() never waited for the lock"
            time.sleep(0.01)
        builder.stdin.write("done\n")
        builder.stdin.flush()
        waiter.join(10)
        assert result == [provision.Installation("/usr/sbin/asterisk", cfg.root, 105, 109)]
    finally:
        builder.kill()
        builder.wait()


def _ensure(cfg: AsteriskSettings) -> object:
    try:
        return provision.ensure(cfg)
    except Exception as e:  # the thread's outcome, for the assertion
        return e
