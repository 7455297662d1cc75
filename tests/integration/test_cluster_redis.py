"""The cluster's Redis side alone, on the real Redis: commands forwarded to the leader."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from ctl.routing.cluster import Cluster
from tests.integration.conftest import REDIS
from tests.integration.harness import eventually

WAITING = 300  # more than redis-py's default pool holds (100)


async def test_hundreds_of_requests_wait_for_the_leader_at_once() -> None:
    """Each forwarded request holds a connection through its BLPOP: a burst of them (2,000
    chat visitors saying hello) must wait for the leader, not fail for want of one."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    leader, node = Cluster(f"{REDIS}/15", "a", prefix), Cluster(f"{REDIS}/15", "b", prefix)
    gate = asyncio.Event()

    async def handle(op: str, args: dict[str, Any]) -> Any:
        await gate.wait()
        return args["n"] * 2

    assert await leader.hold()
    serving = asyncio.create_task(leader.serve(handle))
    calls = [asyncio.create_task(node.call("double", n=n)) for n in range(WAITING)]
    try:
        async def all_sent() -> bool:
            return int(await leader._redis.xlen(f"{prefix}routing:commands")) == WAITING

        await eventually(all_sent, 20, f"{WAITING} requests in the stream")
        assert await leader.hold()  # the lease is renewed while they wait
        gate.set()
        assert await asyncio.gather(*calls) == [n * 2 for n in range(WAITING)]
    finally:
        serving.cancel()
        for task in calls:
            task.cancel()
        await asyncio.gather(serving, *calls, return_exceptions=True)
        await leader.close()
        await node.close()
