"""Shared live state: the in-process version and the real Redis one behave alike."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from ctl.store.live import LiveState, MemoryLive, RedisLive, make_live

REDIS = os.environ.get("CTL_TEST_REDIS", "redis://127.0.0.1:6379")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.pg)])
async def live(request: pytest.FixtureRequest) -> AsyncIterator[LiveState]:
    if request.param == "memory":
        yield MemoryLive()
        return
    prefix = f"ctltest:{secrets.token_hex(6)}:"
    state = RedisLive(REDIS, prefix=prefix, max_connections=8)
    try:
        yield state
    finally:
        await state.close()
        raw = aioredis.from_url(REDIS)
        keys = [k async for k in raw.scan_iter(match=f"{prefix}*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()


async def test_calls(live: LiveState) -> None:
    await live.ping()
    assert await live.get_call("chan-1") is None
    await live.put_call("chan-1", "contact-1", "node-a")
    await live.put_call("chan-2", "contact-2", "node-b")
    call = await live.get_call("chan-1")
    assert call is not None
    assert (call["contact_id"], call["node"]) == ("contact-1", "node-a") and call["since"]
    assert set(await live.active_calls()) == {"chan-1", "chan-2"}

    await live.put_call("chan-1", "contact-1", "node-b")  # adopted by another node
    moved = await live.get_call("chan-1")
    assert moved is not None and moved["node"] == "node-b"
    await live.drop_call("chan-1")
    await live.drop_call("chan-1")  # dropping twice is harmless
    assert await live.get_call("chan-1") is None
    assert list(await live.active_calls()) == ["chan-2"]


async def test_nodes_expire_without_heartbeat(live: LiveState) -> None:
    assert await live.nodes() == []
    await live.heartbeat("node-b", 30)
    await live.heartbeat("node-a", 0.2)
    assert await live.nodes() == ["node-a", "node-b"]
    await asyncio.sleep(0.35)
    assert await live.nodes() == ["node-b"]
    await live.heartbeat("node-a", 30)
    assert await live.nodes() == ["node-a", "node-b"]


async def test_many_concurrent_callers_wait_for_a_connection(live: LiveState) -> None:
    # 8 connections, 400 callers: a plain pool would raise "Too many connections".
    await asyncio.gather(*(live.put_call(f"c{i}", f"k{i}", "n") for i in range(400)))
    got = await asyncio.gather(*(live.get_call(f"c{i}") for i in range(400)))
    assert [g and g["contact_id"] for g in got] == [f"k{i}" for i in range(400)]
    assert len(await live.active_calls()) == 400


async def test_make_live_and_a_dead_server() -> None:
    assert isinstance(make_live(None), MemoryLive)
    dead = make_live("redis://127.0.0.1:1/0")
    assert isinstance(dead, RedisLive)
    try:
        with pytest.raises(aioredis.ConnectionError):
            await dead.ping()
    finally:
        await dead.close()
