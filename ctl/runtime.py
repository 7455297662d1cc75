"""How the `ctl serve` process runs: the GIL's switch interval and the garbage collector's
pace. Both are about one thing, the event loop's pauses.

- The database's writer thread gives up the GIL for every SQLite call; at the default
  5 ms switch interval each call's return then waits behind a busy event loop for up to
  5 ms (bench.chat at 500 msg/s: p50 1.4 s at 5 ms, 64 ms at 0.5 ms).
- CPython 3.11 collects its youngest generation when allocations outnumber deallocations
  by 700, and any deallocation counts against that. With thousands of open chats,
  objects are born and die at the same pace, so that count stays low while the youngest
  generation grows to ~40,000 objects (coroutines, futures of waiting sockets); its
  collection, in whichever thread allocates next (often the writer's), then took 25-60 ms
  (bench.chat, 2,000 visitors at 500 msg/s): most of the p99. Collected every 50 ms
  instead, it holds what 50 ms made (collections of 5-9 ms at most in the same runs).
- Startup's objects (modules, settings, models: ~170,000) live as long as the process:
  frozen, no full collection walks them again.
"""

from __future__ import annotations

import asyncio
import gc
import sys

SWITCH_INTERVAL = 0.0005  # s
YOUNG_EVERY = 0.05  # s between collections of the youngest generation
MIDDLE_EVERY = 20  # of those, one in this many collects the middle generation too


def tune() -> None:
    """Before the event loop does any work."""
    sys.setswitchinterval(SWITCH_INTERVAL)


def settle() -> None:
    """Once started: what exists now stays out of the collector's reach. Objects made
    since are still collected; the frozen ones are freed by reference counting."""
    gc.collect()
    gc.freeze()


async def pace() -> None:
    """Collect the young generations on a clock, not when the allocation count says so
    (see the module's docstring). The oldest is left to the collector's own rule."""
    n = 0
    while True:
        await asyncio.sleep(YOUNG_EVERY)
        n += 1
        gc.collect(1 if n % MIDDLE_EVERY == 0 else 0)
