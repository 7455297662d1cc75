"""A worker process for CPU-bound speech work off the event loop (transcribing a
recording, analysing texts), started on first use. Spawned, not forked: the controller
has threads, and a fork would copy their locks."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any


class Worker:
    def __init__(self, processes: int = 1, nice: int = 0) -> None:
        self.processes = processes
        self.nice = nice  # added to the process's niceness: background work yields the CPU
        self._pool: ProcessPoolExecutor | None = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=os.nice, initargs=(self.nice,))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except BrokenProcessPool:  # the process died (killed, out of memory): next call
            self.close()           # starts a new one instead of failing forever
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
