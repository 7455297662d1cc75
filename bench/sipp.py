"""The same load through sipp (tests/sipp/uac_wait_bye.xml): its own success and rtd figures."""

from __future__ import annotations

import asyncio
import csv
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.harness import PROJECT, free_port

SCENARIO = PROJECT / "tests" / "sipp" / "uac_wait_bye.xml"


@dataclass
class SippResult:
    successful: int
    failed: int
    rtd_ms: list[float] = field(default_factory=list)  # INVITE -> 200 OK, one per call
    returncode: int = 0
    tail: str = ""


async def run(sip: tuple[str, int], target: str, calls: int, concurrency: int, rate: float,
              workdir: Path, caller: str = "+15553000001") -> SippResult:
    """N calls to `target`, C at a time; sipp's trace files stay in `workdir`."""
    if shutil.which("sipp") is None:
        raise RuntimeError("sipp is required (apt-get install sip-tester)")
    scenario = await asyncio.to_thread(_prepare, workdir)
    stat = workdir / "stat.csv"
    # rate 0 means "all at once": as many calls per millisecond as may run concurrently.
    pace = ["-r", str(concurrency), "-rp", "1"] if rate <= 0 else ["-r", f"{rate:g}", "-rp", "1000"]
    args = [
        "sipp", "-sf", str(scenario), "-s", target, "-key", "caller", caller,
        f"{sip[0]}:{sip[1]}", "-i", "127.0.0.1", "-p", "0",
        "-mp", str(free_port(socket.SOCK_DGRAM)), "-m", str(calls), "-l", str(concurrency),
        *pace, "-timeout", "120", "-timeout_error", "-nostdin",
        "-trace_stat", "-stf", str(stat), "-trace_rtt", "-rtt_freq", "1",
    ]
    proc = await asyncio.create_subprocess_exec(*args, cwd=workdir, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 150)
    ok, failed = _counts(stat)
    return SippResult(ok, failed, _rtd(workdir), proc.returncode or 0,
                      out.decode(errors="replace")[-1500:])


def _prepare(workdir: Path) -> Path:
    # sipp names its trace files after the scenario: a copy keeps them out of the repo.
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = workdir / SCENARIO.name
    shutil.copy(SCENARIO, scenario)
    return scenario


def _counts(stat: Path) -> tuple[int, int]:
    """Cumulative successful and failed calls from the last row of sipp's stat file."""
    if not stat.exists():
        return 0, 0
    rows = list(csv.DictReader(stat.open(), delimiter=";"))
    if not rows:
        return 0, 0
    last = rows[-1]
    return int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])


def _rtd(workdir: Path) -> list[float]:
    """Per-call response times (ms) of the scenario's rtd: INVITE sent -> 200 OK received."""
    values: list[float] = []
    for f in workdir.glob("*_rtt.csv"):
        for row in csv.DictReader(f.open(), delimiter=";"):
            with_value = row.get("response_time_ms")
            if with_value:
                values.append(float(with_value))
    return values
