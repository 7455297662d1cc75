"""Run Asterisk as a child process: start, wait until ARI answers, stop, supervise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import aiohttp

from ctl.asterisk.config import Layout
from ctl.asterisk.provision import Installation
from ctl.asterisk.secrets import Secrets
from ctl.errors import PortInUse, ProvisionError
from ctl.settings import AsteriskSettings

log = logging.getLogger(__name__)


def command(inst: Installation, lay: Layout) -> list[str]:
    args = [inst.binary, "-f", "-n", "-C", lay.conf]
    if inst.uid is not None:
        args += ["-U", "asterisk", "-G", "asterisk"]
    if inst.root is None:
        return args
    root = str(inst.root)
    # NOTE: a private mount namespace: /proc, /dev and the instance directory are mounted
    # for this process tree only and vanish with it, even after a SIGKILL, so a crash never
    # leaves mounts behind in the cached root.
    script = " && ".join([
        f"mount -t proc proc {shlex.quote(root + '/proc')}",
        f"mount --rbind /dev {shlex.quote(root + '/dev')}",
        f"mount --bind {shlex.quote(str(lay.host_dir))} {shlex.quote(root + lay.view_dir)}",
        "exec chroot " + shlex.quote(root) + " " + shlex.join(args),
    ])
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]


def check_ports(cfg: AsteriskSettings) -> None:
    wanted = [
        (socket.SOCK_DGRAM, cfg.sip_host, cfg.sip_port, "asterisk.sip_port", "udp"),
        (socket.SOCK_STREAM, "127.0.0.1", cfg.http_port, "asterisk.http_port", "tcp"),
        (socket.SOCK_STREAM, "127.0.0.1", cfg.ami_port, "asterisk.ami_port", "tcp"),
    ]
    for kind, host, port, setting, proto in wanted:
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as e:
                raise PortInUse(
                    f"port {port}/{proto} on {host} is already in use ({e.strerror})",
                    hint=f"stop what holds it (another Asterisk? `ctl asterisk down`) "
                    f"or set {setting}",
                ) from None


class AsteriskProcess:
    """One Asterisk for one data directory. The pid file lets separate CLI calls find it."""

    def __init__(self, inst: Installation, lay: Layout, cfg: AsteriskSettings,
                 secrets: Secrets) -> None:
        self.inst, self.lay, self.cfg, self.secrets = inst, lay, cfg, secrets
        self.pidfile = lay.host("ctl-asterisk.pid")
        self.console = lay.host("log", "console.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def spawn(self) -> None:
        if self.pid():
            raise ProvisionError(
                f"Asterisk already runs for {self.lay.host_dir} (pid {self.pid()})",
                hint="`ctl asterisk down` first")
        check_ports(self.cfg)
        self.console.parent.mkdir(parents=True, exist_ok=True)
        with self.console.open("ab") as out:
            self.proc = subprocess.Popen(
                command(self.inst, self.lay), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.pidfile.write_text(str(self.proc.pid))

    async def wait_ready(self) -> None:
        url = f"http://127.0.0.1:{self.cfg.http_port}/ari/asterisk/info"
        auth = aiohttp.encode_basic_auth("ctl", self.secrets.ari_password)
        deadline = time.monotonic() + self.cfg.start_timeout
        async with aiohttp.ClientSession(headers={"Authorization": auth}) as http:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise ProvisionError(
                        f"Asterisk exited with status {self.proc.returncode} while starting:\n"
                        + self.tail(), hint=f"see {self.console} and {self.lay.host('log')}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(url) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise ProvisionError(f"Asterisk did not answer on ARI within {self.cfg.start_timeout}s:\n"
                             + self.tail(), hint=f"see {self.console}")

    async def start(self) -> None:
        self.spawn()
        try:
            await self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> bool:
        pid = self.proc.pid if self.proc else self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid, self.proc):
            time.sleep(0.05)
        if _alive(pid, self.proc):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _alive(pid, self.proc)
        self.pidfile.unlink(missing_ok=True)
        self.proc = None
        return True

    def tail(self, n: int = 15) -> str:
        lines: list[str] = []
        for f in (self.console, self.lay.host("log", "messages.log")):
            if f.exists():
                lines += f.read_text(errors="replace").splitlines()[-n:]
        return "    " + "\n    ".join(lines[-n:])

    def cli_command(self, *cmd: str) -> list[str]:
        """argv that runs an Asterisk CLI command (`-rx`) against this instance."""
        base = [self.inst.binary, "-C", self.lay.conf]
        base += ["-rx", " ".join(cmd)] if cmd else ["-r"]
        pid = self.pid()
        if self.inst.root is None or pid is None:
            return base
        # Join the instance's private mount namespace and root to reach its control socket.
        return ["nsenter", "-t", str(pid), "-m", "-r", "-w", *base]


def _alive(pid: int, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return ""
