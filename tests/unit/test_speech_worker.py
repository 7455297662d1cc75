"""Speech worker processes end with the controller, even when it is killed outright."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

CONTROLLER = textwrap.dedent("""
    import asyncio, os, sys
    from ctl.speech.worker import Worker

    async def main() -> None:
        print(await Worker(nice=10).run(os.getpid), flush=True)
        sys.stdin.read()  # until the test kills it

    asyncio.run(main())
""")


async def exited(pid: int, timeout: float) -> None:
    fd = os.pidfd_open(pid)  # readable once that process has ended
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_reader(fd, done.set_result, None)
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)


async def test_a_killed_controller_takes_its_worker_with_it() -> None:
    controller = subprocess.Popen([sys.executable, "-c", CONTROLLER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
    try:
        assert controller.stdout is not None
        line = await asyncio.to_thread(controller.stdout.readline)
        worker = int(line)
        assert worker != controller.pid
        os.kill(controller.pid, signal.SIGKILL)
        await exited(worker, 20)
    finally:
        controller.kill()
        controller.wait()
