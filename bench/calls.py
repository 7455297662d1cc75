"""Calls through the controller (1000) against the same prompt by pure dialplan (1999).

    .venv/bin/python -m bench.calls [--calls 100] [--concurrency 100] [--rate 100] [--pg]

One run starts its own Asterisk and `ctl serve`, warms both paths up, then places the same
load on each with the in-process UAC (setup and media latency, CPU per call) and again
with sipp (its success count and response times). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import sipp
from bench.stack import Stack, running
from bench.uac import CallResult, Uac

DIALPLAN, CONTROLLER = "1999", "1000"
NAMES = {DIALPLAN: "dialplan", CONTROLLER: "controller"}
TARGET_RATIO = 1.3


@dataclass
class Phase:
    """One load on one target, and what it cost."""

    target: str
    results: list[CallResult] = field(default_factory=list)
    cpu_ast: float = 0.0  # seconds of Asterisk CPU during the phase
    cpu_ctl: float = 0.0
    cpu_uac: float = 0.0  # the load generator's own CPU, to show it left room
    wall: float = 0.0
    peak: int = 0
    ctl_not_completed: int = 0  # calls ctl closed with another reason than "completed"
    sipp: sipp.SippResult | None = None

    @property
    def calls(self) -> int:
        return len(self.results) if self.sipp is None else self.sipp.successful + self.sipp.failed

    @property
    def failed(self) -> int:
        sip_failed = sum(r.failed for r in self.results)
        if self.sipp is not None:
            sip_failed = self.sipp.failed
        return sip_failed + self.ctl_not_completed

    def ms(self, attr: str) -> list[float]:
        if self.sipp is not None:
            return self.sipp.rtd_ms if attr == "setup_ms" else []
        return [v for r in self.results if (v := getattr(r, attr)) is not None]

    def cpu_ms(self, with_ctl: bool) -> float:
        spent = self.cpu_ast + (self.cpu_ctl if with_ctl else 0.0)
        return 1000 * spent / max(self.calls, 1)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: p99 of 100 calls is the 99th slowest, not an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def place(uac: Uac, target: str, calls: int, concurrency: int, rate: float,
                first_number: int, key: str = "") -> tuple[list[CallResult], int]:
    """`calls` calls, at most `concurrency` at once, started `rate` per second (0: at once);
    each presses `key` after the first prompt if one is given.

    Each caller has its own number, as real callers do: ctl identifies every one of them.
    """
    slots = asyncio.Semaphore(concurrency)
    active, peak = 0, 0

    async def one(i: int) -> CallResult:
        nonlocal active, peak
        async with slots:
            active += 1
            peak = max(peak, active)
            try:
                return await uac.call(target, f"+1555{first_number + i:07d}", key=key)
            finally:
                active -= 1

    tasks = []
    start = time.perf_counter()
    for i in range(calls):
        if rate > 0:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i)))
    return list(await asyncio.gather(*tasks)), peak


async def measure(stack: Stack, phase: Phase, load: Callable[[], Awaitable[None]],
                  controller: bool | None = None) -> Phase:
    """Run `load` between two settled, idle points and charge the CPU spent to `phase`.
    `controller`: the calls went through ctl (default: the target is 1000)."""
    await stack.settle()
    before = await stack.ended_reasons()
    ast0, ctl0 = stack.cpu()
    uac0, wall0 = time.process_time(), time.perf_counter()
    await load()
    phase.wall = time.perf_counter() - wall0
    await stack.settle()
    ast1, ctl1 = stack.cpu()
    phase.cpu_ast, phase.cpu_ctl = ast1 - ast0, ctl1 - ctl0
    phase.cpu_uac = time.process_time() - uac0
    if phase.target == CONTROLLER if controller is None else controller:
        after = await stack.ended_reasons()
        completed = after.get("completed", 0) - before.get("completed", 0)
        phase.ctl_not_completed = max(0, phase.calls - round(completed))
    return phase


async def uac_phase(stack: Stack, uac: Uac, target: str, args: argparse.Namespace,
                    first_number: int) -> Phase:
    phase = Phase(target)

    async def load() -> None:
        phase.results, phase.peak = await place(uac, target, args.calls, args.concurrency,
                                                args.rate, first_number)

    return await measure(stack, phase, load)


async def sipp_phase(stack: Stack, target: str, args: argparse.Namespace) -> Phase:
    phase = Phase(target)

    async def load() -> None:
        phase.sipp = await sipp.run(stack.sip, target, args.calls, args.concurrency, args.rate,
                                    stack.data_dir / f"sipp-{target}")

    return await measure(stack, phase, load)


async def bench(args: argparse.Namespace, data_dir: Path) -> tuple[list[Phase], list[Phase]]:
    async with running(data_dir, args.concurrency, args.pg) as stack:
        uac = Uac(stack.sip)
        await uac.open()
        try:
            for target in (DIALPLAN, CONTROLLER):  # warm caches, pools, the prompt file
                await place(uac, target, args.warmup, args.warmup, 0, 9_000_000)
            phases = [await uac_phase(stack, uac, t, args, n * 1_000_000)
                      for n, t in enumerate((DIALPLAN, CONTROLLER), start=1)]
        finally:
            await uac.close()
        sipps = [await sipp_phase(stack, t, args) for t in (DIALPLAN, CONTROLLER)]
        return phases, sipps


def _row(cells: Sequence[str]) -> str:
    widths = (20, 9, 9, 9, 9, 10, 10, 7)
    return " ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(
        zip(cells, widths, strict=True)))


def _fig(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.1f}"


def figures(p: Phase) -> list[float]:
    setup, media = p.ms("setup_ms"), p.ms("media_ms")
    return [statistics.median(setup) if setup else math.nan, percentile(setup, 99),
            statistics.median(media) if media else math.nan, percentile(media, 99),
            p.cpu_ms(False), p.cpu_ms(True)]


def report(uac: list[Phase], sipps: list[Phase], args: argparse.Namespace) -> list[str]:
    """Print the table and return the verdicts that failed."""
    base, ctl = uac
    peak = max(p.peak for p in uac)
    print(f"\n{args.calls} calls per target, {args.concurrency} concurrent (peak {peak}), "
          f"{'all at once' if args.rate <= 0 else f'{args.rate:g} calls/s'}, "
          f"{'PostgreSQL+Redis' if args.pg else 'SQLite'}, {os.cpu_count()} CPUs")
    print(_row(["", "INVITE->200 OK ms", "", "200->1st RTP ms", "", "CPU ms/call", "", ""]))
    print(_row(["target", "p50", "p99", "p50", "p99", "Asterisk", "Ast+ctl", "failed"]))
    for p in (*uac, *(s for s in sipps)):
        label = f"{p.target} {NAMES[p.target]}" + (" sipp" if p.sipp else "")
        print(_row([label, *(_fig(v) for v in figures(p)), str(p.failed)]))
    ratios = [c / b if b > 0 else math.inf for b, c in zip(figures(base), figures(ctl),
                                                           strict=True)]
    print(_row(["ratio ctl/dialplan", *(f"{r:.2f}x" for r in ratios), ""]))
    for p in uac:
        held = statistics.median(p.ms("held_ms") or [math.nan])
        print(f"  {NAMES[p.target]}: {p.wall:.1f}s wall, call held {held:.0f} ms (p50), "
              f"ctl CPU {1000 * p.cpu_ctl / max(p.calls, 1):.1f} ms/call, "
              f"UAC CPU {100 * p.cpu_uac / max(p.wall, 1e-9):.0f}% of a core")
    for p in (*uac, *sipps):
        for r in [r for r in p.results if r.failed][:5]:
            print(f"  failed {NAMES[p.target]} call {r.number}: {r.error}")
        if p.sipp is not None and p.sipp.failed:
            print(f"  sipp {NAMES[p.target]} exited {p.sipp.returncode}:\n{p.sipp.tail}")
    return verdicts(ratios, [*uac, *sipps])


def verdicts(ratios: list[float], phases: list[Phase]) -> list[str]:
    names = ["setup p50", "setup p99", "1st RTP p50", "1st RTP p99", "CPU Asterisk",
             "CPU Ast+ctl"]
    failed = []
    for name, r in zip(names, ratios, strict=True):
        ok = r <= TARGET_RATIO
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {r:.2f}x (target <= {TARGET_RATIO}x)")
        if not ok:
            failed.append(name)
    lost = sum(p.failed for p in phases)
    print(f"{'PASS' if not lost else 'FAIL'}  failed calls: {lost} (target 0)")
    return failed + (["failed calls"] if lost else [])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=100, help="calls per target (default 100)")
    ap.add_argument("--concurrency", type=int, default=100, help="calls at once (default 100)")
    ap.add_argument("--rate", type=float, default=None,
                    help="new calls per second; 0: all at once (default: the concurrency, "
                    "so the calls overlap fully within the ~1.4 s prompt)")
    ap.add_argument("--warmup", type=int, default=5, help="unmeasured calls per target first")
    ap.add_argument("--pg", action="store_true",
                    help="ctl on PostgreSQL+Redis (CTL_BENCH_PG, CTL_BENCH_REDIS)")
    ap.add_argument("--keep", action="store_true", help="keep the data dir (logs) afterwards")
    args = ap.parse_args(argv)
    if args.rate is None:
        args.rate = float(args.concurrency)
    return args


def run_main(prefix: str, keep: bool, work: Callable[[Path], list[str]]) -> int:
    """`work` in a new data directory; the exit status from the verdicts it says failed:
    1 when calls failed, 2 when only a target was missed."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        failed = work(data_dir)
    except KeyboardInterrupt:
        print("interrupted; Asterisk and ctl stopped", file=sys.stderr)
        return 130
    finally:
        if keep:
            print(f"data dir (ctl-*.log, asterisk/log/): {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    if "failed calls" in failed:
        return 1
    return 2 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main("ctl-bench-", args.keep,
                    lambda data_dir: report(*asyncio.run(bench(args, data_dir)), args))


if __name__ == "__main__":
    sys.exit(main())
