"""Live state shared by controller nodes: which node owns which call, which nodes are up,
and small values every node must agree on (a platform's renewed access token).

One node needs nothing shared (MemoryLive); several nodes share Redis (RedisLive). The
database stays the record; this is the fast, expiring index next to it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Protocol

import redis.asyncio as aioredis

CallInfo = dict[str, str]  # contact_id, node, since (ISO 8601, UTC)


class LiveState(Protocol):
    async def put_call(self, channel_id: str, contact_id: str, node: str) -> None: ...
    async def get_call(self, channel_id: str) -> CallInfo | None: ...
    async def drop_call(self, channel_id: str) -> None: ...
    async def active_calls(self) -> dict[str, CallInfo]: ...
    async def heartbeat(self, node: str, ttl_s: float) -> None: ...
    async def nodes(self) -> list[str]: ...
    async def get_value(self, key: str) -> str | None: ...
    async def put_value(self, key: str, value: str) -> None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


def _call(contact_id: str, node: str) -> CallInfo:
    return {"contact_id": contact_id, "node": node, "since": datetime.now(UTC).isoformat()}


class MemoryLive:
    def __init__(self) -> None:
        self._calls: dict[str, CallInfo] = {}
        self._nodes: dict[str, float] = {}  # node -> monotonic deadline
        self._values: dict[str, str] = {}

    async def put_call(self, channel_id: str, contact_id: str, node: str) -> None:
        self._calls[channel_id] = _call(contact_id, node)

    async def get_call(self, channel_id: str) -> CallInfo | None:
        call = self._calls.get(channel_id)
        return dict(call) if call else None

    async def drop_call(self, channel_id: str) -> None:
        self._calls.pop(channel_id, None)

    async def active_calls(self) -> dict[str, CallInfo]:
        return {k: dict(v) for k, v in self._calls.items()}

    async def heartbeat(self, node: str, ttl_s: float) -> None:
        self._nodes[node] = time.monotonic() + ttl_s

    async def nodes(self) -> list[str]:
        now = time.monotonic()
        self._nodes = {n: t for n, t in self._nodes.items() if t >= now}
        return sorted(self._nodes)

    async def get_value(self, key: str) -> str | None:
        return self._values.get(key)

    async def put_value(self, key: str, value: str) -> None:
        self._values[key] = value

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


# Node deadlines use the Redis server's clock, so skew between nodes cannot declare a
# live node dead.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
_NODES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


class RedisLive:
    def __init__(self, url: str, prefix: str = "ctl:", max_connections: int = 64) -> None:
        # NOTE: the default pool raises "Too many connections" past its limit; the
        # blocking one makes callers wait for a free connection instead.
        self._pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=10, decode_responses=True,
            socket_connect_timeout=5, health_check_interval=30,
        )
        self._redis = aioredis.Redis(connection_pool=self._pool)
        self._calls = f"{prefix}calls"
        self._nodes = f"{prefix}nodes"
        self._values = f"{prefix}values"
        self._heartbeat = self._redis.register_script(_HEARTBEAT)
        self._alive = self._redis.register_script(_NODES)

    async def put_call(self, channel_id: str, contact_id: str, node: str) -> None:
        await self._redis.hset(self._calls, channel_id, json.dumps(_call(contact_id, node)))

    async def get_call(self, channel_id: str) -> CallInfo | None:
        raw = await self._redis.hget(self._calls, channel_id)
        return _decode(raw) if raw else None

    async def drop_call(self, channel_id: str) -> None:
        await self._redis.hdel(self._calls, channel_id)

    async def active_calls(self) -> dict[str, CallInfo]:
        raw = await self._redis.hgetall(self._calls)
        return {_text(k): _decode(v) for k, v in raw.items()}

    async def heartbeat(self, node: str, ttl_s: float) -> None:
        await self._heartbeat(keys=[self._nodes], args=[node, ttl_s])

    async def nodes(self) -> list[str]:
        return sorted(await self._alive(keys=[self._nodes]))

    async def get_value(self, key: str) -> str | None:
        raw = await self._redis.hget(self._values, key)
        return _text(raw) if raw is not None else None

    async def put_value(self, key: str, value: str) -> None:
        await self._redis.hset(self._values, key, value)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()


def _text(value: str | bytes) -> str:
    # The pool decodes responses; redis-py's types cannot know that.
    return value.decode() if isinstance(value, bytes) else value


def _decode(raw: str | bytes) -> CallInfo:
    value = json.loads(raw)
    return {str(k): str(v) for k, v in value.items()}


def make_live(redis_url: str | None) -> LiveState:
    return RedisLive(redis_url) if redis_url else MemoryLive()
