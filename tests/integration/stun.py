"""A real STUN/TURN server for the desk's tests: Debian's coturn (`turnserver`) on
loopback, with TURN REST credentials (`use-auth-secret`), as a deployment would run it.
Its log says whether a browser used it: each STUN Binding it answered, and each TURN
Allocate with the username it came with and whether the credentials passed."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REALM = "ctl-test"
_ALLOCATE = re.compile(r"user <([^>]+)>: incoming packet ALLOCATE processed, (success|error)")


@dataclass
class StunTurn:
    secret: str
    port: int
    log: Path

    def _lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []

    @property
    def bindings(self) -> int:
        """STUN Binding requests answered."""
        return sum("handle_turn_binding" in line and ":start" in line for line in self._lines())

    @property
    def allocations(self) -> list[tuple[str, bool]]:
        """(username, whether its credentials passed) for each authenticated Allocate."""
        return [(m[1], m[2] == "success") for line in self._lines()
                if (m := _ALLOCATE.search(line))]


@contextlib.contextmanager
def serve(secret: str, port: int, relay_ports: range, log: Path) -> Iterator[StunTurn]:
    """coturn on 127.0.0.1:`port` (UDP), relaying on `relay_ports`, until the block ends."""
    binary = shutil.which("turnserver")
    if binary is None:  # a failure, not a skip: bootstrap.sh installs it for the suite
        raise RuntimeError("turnserver (coturn) is not installed: apt-get install coturn")
    proc = subprocess.Popen(
        [binary, "-n", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
         "--listening-port", str(port), "--min-port", str(relay_ports.start),
         "--max-port", str(relay_ports.stop - 1), "--realm", REALM, "--use-auth-secret",
         "--static-auth-secret", secret, "--no-tls", "--no-dtls", "--no-tcp", "--no-cli",
         "--allow-loopback-peers", "--log-file", str(log), "--simple-log", "-V"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        # It says nothing but in its log: its listeners are open once it counts them.
        while not (log.exists() and "Total General servers" in log.read_text(errors="replace")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"turnserver did not start (exit {proc.poll()}); see {log}")
            time.sleep(0.05)
        yield StunTurn(secret, port, log)
    finally:
        proc.terminate()
        proc.wait(10)
