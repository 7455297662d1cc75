"""A worker process for CPU-bound speech work off the event loop (transcribing a
recording, analysing texts), started on first use. Spawned, not forked: the controller
has threads, and a fork would copy their locks."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any


def spawn_pool(processes: int, nice: int = 0) -> ProcessPoolExecutor:
    """A pool of spawned processes that end with the controller, however it ends."""
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=(nice,))


def _start(nice: int) -> None:
    os.nice(nice)
    # NOTE: a pool's worker holds both ends of its call queue's pipe, so a controller
    # killed outright (SIGKILL, OOM) never shows it an EOF: it would wait forever,
    # orphaned, holding its model's memory. The parent's sentinel is ready once it exits.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


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
            self._pool = spawn_pool(self.processes, self.nice)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except BrokenProcessPool:  # the process died (killed, out of memory): next call
            self.close()           # starts a new one instead of failing forever
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
