"""SIP test tools: sipp as a phone, a carrier or a registrar (scenarios in tests/sipp/),
and agents created the way `ctl agents add` creates them."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.integration.harness import PROJECT, eventually

SCENARIOS = Path(__file__).parents[1] / "sipp"


@dataclass
class Sipp:
    rc: int
    out: str

    def check(self) -> None:
        assert self.rc == 0, f"sipp exited {self.rc}:\n{self.out[-3000:]}"


def argv(scenario: str, *args: str) -> list[str]:
    assert shutil.which("sipp"), "sipp is required (apt-get install sip-tester)"
    return ["sipp", "-sf", str(SCENARIOS / scenario), "-m", "1", "-timeout", "30",
            "-timeout_error", "-nostdin", *args]


async def run(scenario: str, *args: str, timeout: float = 40) -> Sipp:
    """One call of `scenario`, to its end (sipp's exit status says if it went as written)."""
    proc = await asyncio.create_subprocess_exec(
        *argv(scenario, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return await finish(proc, timeout)


async def finish(proc: asyncio.subprocess.Process, timeout: float = 40) -> Sipp:
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return Sipp(proc.returncode, out.decode(errors="replace"))


async def serve(scenario: str, host: str, port: int, *args: str) -> asyncio.subprocess.Process:
    """sipp as a server on host:port/udp, returned once it listens."""
    proc = await asyncio.create_subprocess_exec(
        *argv(scenario, "-i", host, "-p", str(port), *args),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    async def listening() -> bool:
        if proc.returncode is not None:
            out = (await proc.communicate())[0].decode(errors="replace")
            raise AssertionError(f"sipp {scenario} exited {proc.returncode}:\n{out[-2000:]}")
        return udp_bound(host, port)

    await eventually(listening, 10, f"sipp {scenario} to listen on {host}:{port}")
    return proc


async def kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.communicate()


def udp_port_on(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def udp_bound(host: str, port: int) -> bool:
    """Whether a socket is bound to host:port/udp: read from /proc, never probed by binding
    (a probe could take the port from under the server that is starting)."""
    address = int.from_bytes(socket.inet_aton(host), sys.byteorder)  # as /proc prints it
    want = f"{address:08X}:{port:04X}"
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(line.split()[1] == want for line in lines)


async def ctl_command(env: dict[str, str], *args: str) -> str:
    """The `ctl` command as an operator runs it; its output (it must succeed)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ctl", *args, env=env, cwd=PROJECT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = (await asyncio.wait_for(proc.communicate(), 60))[0].decode(errors="replace")
    assert proc.returncode == 0, f"ctl {' '.join(args)} exited {proc.returncode}:\n{out}"
    return out


async def add_agent(env: dict[str, str], username: str, name: str, extension: str) -> str:
    """`ctl agents add`; returns the SIP password it printed (once)."""
    out = await ctl_command(env, "agents", "add", username, "--name", name,
                            "--extension", extension)
    found = re.search(r"SIP user agent-\S+, password (\S+),", out)
    assert found, out
    return found.group(1)


def on_shared_asterisk(env: dict[str, str]) -> dict[str, str]:
    """`env` for `ctl agents add` against the session's Asterisk by a module whose ctl has
    an ARI app and queues of its own: applying agents re-renders the whole dialplan from
    the CLI's settings, which must keep the session controller's app and numbers."""
    return {k: v for k, v in env.items() if k not in ("CTL_ASTERISK__APP", "CTL_ROUTING")}
