"""An IVR menu through the controller's YAML flow runner (1290) against the same menu in
pure dialplan, Background/WaitExten (1990): time from the key to the next prompt's audio.

    .venv/bin/python -m bench.ivr [--calls 100] [--concurrency 100] [--rounds 3] [--profile]

One run starts its own Asterisk and `ctl serve` (bench/flows/bench-menu.yaml published on
1290), warms both paths up, then places the same load on each, in alternating rounds, with
the in-process UAC: every caller hears hello-world, presses 1 (RFC 4733) once it has gone
quiet, and hears auth-thankyou. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.calls import Phase, measure, percentile, place, run_main
from bench.ivr_profile import Profiler
from bench.stack import Stack, running
from bench.uac import Uac

DIALPLAN, CONTROLLER = "1990", "1290"
NAMES = {DIALPLAN: "dialplan", CONTROLLER: "controller"}
FLOWS = Path(__file__).resolve().parent / "flows"
KEY = "1"
TARGET_RATIO = 1.3


async def menu_phase(stack: Stack, uac: Uac, target: str, args: argparse.Namespace,
                     first_number: int) -> Phase:
    phase = Phase(target)

    async def load() -> None:
        phase.results, phase.peak = await place(uac, target, args.calls, args.concurrency,
                                                args.rate, first_number, key=KEY)

    return await measure(stack, phase, load, controller=target == CONTROLLER)


async def bench(args: argparse.Namespace,
                data_dir: Path) -> tuple[list[list[Phase]], Profiler]:
    ivr = {"flows_dir": str(FLOWS), "watch": False, "numbers": {CONTROLLER: "bench-menu"}}
    async with running(data_dir, args.concurrency, args.pg, {"CTL_IVR": json.dumps(ivr)}) \
            as stack:
        uac = Uac(stack.sip)
        await uac.open()
        profiler = Profiler(stack, args.profile)
        try:
            for target in (DIALPLAN, CONTROLLER):  # warm caches, pools, the sound files
                await place(uac, target, args.warmup, args.warmup, 0, 9_000_000, key=KEY)
            rounds: list[list[Phase]] = [[], []]
            async with profiler.watching():
                # Alternating rounds: a burst of other work on this machine lands on both
                # targets alike instead of on one of them.
                for n in range(args.rounds):
                    for i, target in enumerate((DIALPLAN, CONTROLLER)):
                        rounds[i].append(await menu_phase(
                            stack, uac, target, args, (2 * n + i + 1) * 1_000_000))
        finally:
            await uac.close()
        return rounds, profiler


def pooled(rounds: list[Phase]) -> Phase:
    """The rounds of one target as one phase (all calls, all CPU, every round's ratio)."""
    p = Phase(rounds[0].target)
    for r in rounds:
        p.results += r.results
        p.cpu_ast, p.cpu_ctl, p.cpu_uac = p.cpu_ast + r.cpu_ast, p.cpu_ctl + r.cpu_ctl, \
            p.cpu_uac + r.cpu_uac
        p.wall += r.wall
        p.peak = max(p.peak, r.peak)
        p.ctl_not_completed += r.ctl_not_completed
    return p


def _row(cells: Sequence[str]) -> str:
    widths = (20, 9, 9, 9, 9, 10, 10, 7)
    return " ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(
        zip(cells, widths, strict=True)))


def figures(p: Phase) -> list[float]:
    key, setup = p.ms("key_ms"), p.ms("setup_ms")
    return [statistics.median(key) if key else math.nan, percentile(key, 99),
            statistics.median(setup) if setup else math.nan, percentile(setup, 99),
            p.cpu_ms(False), p.cpu_ms(True)]


def report(rounds: list[list[Phase]], profiler: Profiler,
           args: argparse.Namespace) -> list[str]:
    """Print the table and return the verdicts that failed."""
    phases = [pooled(r) for r in rounds]
    base, ctl = phases
    peak = max(p.peak for p in phases)
    print(f"\n{args.rounds} rounds of {args.calls} calls per target, "
          f"{args.concurrency} concurrent (peak {peak}), "
          f"{'all at once' if args.rate <= 0 else f'{args.rate:g} calls/s'}, "
          f"{'PostgreSQL+Redis' if args.pg else 'SQLite'}, {os.cpu_count()} CPUs")
    print(_row(["", "key->prompt ms", "", "INVITE->200 OK", "", "CPU ms/call", "", ""]))
    print(_row(["target", "p50", "p99", "p50", "p99", "Asterisk", "Ast+ctl", "failed"]))
    for p in phases:
        print(_row([f"{p.target} {NAMES[p.target]}",
                    *("-" if math.isnan(v) else f"{v:.1f}" for v in figures(p)),
                    str(p.failed)]))
    ratios = [c / b if b > 0 else math.inf for b, c in zip(figures(base), figures(ctl),
                                                           strict=True)]
    print(_row(["ratio ctl/dialplan", *(f"{r:.2f}x" for r in ratios), ""]))
    each = [(figures(c)[0] / figures(b)[0], figures(c)[1] / figures(b)[1])
            for b, c in zip(*rounds, strict=True)]
    print("  key->prompt ratio p50/p99 by round: "
          + ", ".join(f"{p50:.2f}x/{p99:.2f}x" for p50, p99 in each))
    for p in phases:
        held = statistics.median(p.ms("held_ms") or [math.nan])
        print(f"  {NAMES[p.target]}: {p.wall:.1f}s wall, call held {held:.0f} ms (p50), "
              f"ctl CPU {1000 * p.cpu_ctl / max(p.calls, 1):.1f} ms/call, "
              f"UAC CPU {100 * p.cpu_uac / max(p.wall, 1e-9):.0f}% of a core")
        for r in [r for r in p.results if r.failed][:5]:
            print(f"  failed {NAMES[p.target]} call {r.number}: {r.error}")
        profiler.report(NAMES[p.target], p.results)
    return verdicts(ratios[:2], phases, peak, args.concurrency)


def verdicts(ratios: list[float], phases: list[Phase], peak: int,
             concurrency: int) -> list[str]:
    failed = []
    for name, r in zip(("key->prompt p50", "key->prompt p99"), ratios, strict=True):
        ok = r <= TARGET_RATIO
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {r:.2f}x (target <= {TARGET_RATIO}x)")
        if not ok:
            failed.append(name)
    lost = sum(p.failed for p in phases)
    print(f"{'PASS' if not lost else 'FAIL'}  failed calls: {lost} (target 0)")
    if peak < concurrency:  # the load did not reach the concurrency asked for
        print(f"NOTE  peak concurrency {peak} < {concurrency}: raise --rate or --calls")
    return failed + (["failed calls"] if lost else [])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.ivr", description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=100, help="calls per target (default 100)")
    ap.add_argument("--concurrency", type=int, default=100, help="calls at once (default 100)")
    ap.add_argument("--rate", type=float, default=None,
                    help="new calls per second; 0: all at once (default: the concurrency, "
                    "so the calls overlap fully within the ~3 s menu call)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds per target, pooled (default 3)")
    ap.add_argument("--warmup", type=int, default=5, help="unmeasured calls per target first")
    ap.add_argument("--pg", action="store_true",
                    help="ctl on PostgreSQL+Redis (CTL_BENCH_PG, CTL_BENCH_REDIS)")
    ap.add_argument("--profile", action="store_true",
                    help="split key->prompt by Asterisk's event times (costs Asterisk CPU)")
    ap.add_argument("--keep", action="store_true", help="keep the data dir (logs) afterwards")
    args = ap.parse_args(argv)
    if args.rate is None:
        args.rate = float(args.concurrency)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main("ctl-bench-ivr-", args.keep,
                    lambda data_dir: report(*asyncio.run(bench(args, data_dir)), args))


if __name__ == "__main__":
    sys.exit(main())
