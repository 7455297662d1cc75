"""The serve process's garbage collection runs on a clock: the youngest generation every
YOUNG_EVERY, the middle one every MIDDLE_EVERY of those, and startup's objects frozen."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from ctl import runtime


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of every collection while the test runs, with the collector's own
    (allocation-triggered) ones switched off: what remains is the pacer's."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    was = gc.isenabled()
    gc.disable()
    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)
        if was:
            gc.enable()


async def test_pace_collects_young_then_middle_generations(collections: list[int]) -> None:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 1
                        and loop.call_soon_threadsafe(done.set))
    pacer = asyncio.create_task(runtime.pace())
    try:
        await asyncio.wait_for(done.wait(), 10 * runtime.YOUNG_EVERY * runtime.MIDDLE_EVERY)
    finally:
        pacer.cancel()
        gc.callbacks.pop()
    first_middle = collections.index(1)
    assert collections[:first_middle] == [0] * (runtime.MIDDLE_EVERY - 1)
    assert 2 not in collections  # the oldest generation is left to the collector


def test_settle_freezes_what_exists() -> None:
    survivor = [object()]  # a container: tracked by the collector
    try:
        runtime.settle()
        assert gc.get_freeze_count() > 0
        assert not any(o is survivor for o in gc.get_objects())  # frozen: not walked
    finally:
        gc.unfreeze()


def test_tune_shortens_the_switch_interval() -> None:
    import sys

    before = sys.getswitchinterval()
    try:
        runtime.tune()
        assert sys.getswitchinterval() == runtime.SWITCH_INTERVAL < before
    finally:
        sys.setswitchinterval(before)
