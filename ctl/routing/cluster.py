"""Several controllers sharing Redis: one leader decides, every node serves.

The leader holds a lease in Redis (renewed every third of its time to live); only it runs
the routing engine, the ARI connection and the timers. Any node takes HTTP requests and
hands routing operations to the leader through a Redis stream; the leader answers on a
per-request list. What the leader pushes to panels goes out on pub/sub and every node
delivers it to the websockets it holds. A node that takes over rebuilds the engine from
the database, so nothing the old leader acknowledged is lost, and it re-reads commands
the old leader took but never answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from ctl.errors import CtlError
from ctl.routing.notifier import Message, Notifier

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RemoteError(CtlError):
    """An error the leader raised, carried back with its HTTP status and code."""

    def __init__(self, message: str, status: int, code: str, hint: str | None,
                 reason: str | None = None, params: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint, reason=reason, params=params)
        self.status, self.code = status, code


class RoutingUnavailable(CtlError):
    status = 503
    code = "routing_unavailable"


class Cluster:
    def __init__(self, url: str, node: str, prefix: str = "ctl:", lease_ttl: float = 6.0
                 ) -> None:
        self.node = node
        # Two pools, both waiting for a free connection rather than raising (redis-py's
        # default pool raises past 100): requests forwarded to the leader each hold one
        # through their BLPOP, and however many wait, the lease, the command stream and
        # the pushes keep connections of their own. No client-side read timeout: BLPOP
        # and XREADGROUP block on the server's clock.
        def client(max_connections: int) -> aioredis.Redis:
            return aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=15, decode_responses=True,
                socket_timeout=None, socket_connect_timeout=5))

        self._redis, self._calls = client(16), client(512)
        self._lease_key, self._epoch_key = f"{prefix}routing:leader", f"{prefix}routing:epoch"
        self._stream, self._group = f"{prefix}routing:commands", "leader"
        self._push = f"{prefix}routing:push"
        self._reply = f"{prefix}routing:reply:"
        self.ttl = lease_ttl
        self.leader = False
        self.epoch = 0
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)

    # --- the lease ------------------------------------------------------------------

    async def hold(self) -> bool:
        """Take the lease if free, keep it if ours; whether this node leads now."""
        ms = int(self.ttl * 1000)
        if self.leader:
            self.leader = bool(await self._renew(keys=[self._lease_key], args=[self.node, ms]))
        elif await self._redis.set(self._lease_key, self.node, nx=True, px=ms):
            self.epoch = int(await self._redis.incr(self._epoch_key))
            self.leader = True
        return self.leader

    async def holder(self) -> str | None:
        value = await self._redis.get(self._lease_key)
        return None if value is None else str(value)

    async def resign(self) -> None:
        if self.leader:
            self.leader = False
            with contextlib.suppress(Exception):
                await self._release(keys=[self._lease_key], args=[self.node])

    # --- commands to the leader -----------------------------------------------------

    async def call(self, op: str, timeout: float = 15.0, **args: Any) -> Any:
        request = uuid.uuid4().hex
        try:
            await self._calls.xadd(self._stream, {"id": request, "op": op,
                                                  "args": json.dumps(args)}, maxlen=100_000)
            got = await self._calls.blpop([self._reply + request], timeout=timeout)
        except aioredis.RedisError as e:
            raise RoutingUnavailable(f"routing {op}: Redis failed: {e}") from e
        if got is None:
            raise RoutingUnavailable(f"no routing leader answered {op} within {timeout:g}s",
                                     hint="check that a controller holds the lease "
                                     "(GET /healthz shows each node's role)")
        reply = json.loads(got[1])
        if "error" in reply:
            err = reply["error"]
            raise RemoteError(err["message"], err["status"], err["code"], err.get("hint"),
                              err.get("reason"), err.get("params"))
        return reply["result"]

    async def serve(self, handle: Callable[[str, dict[str, Any]], Awaitable[Any]]) -> None:
        """As leader: answer commands until cancelled, those left unanswered first."""
        with contextlib.suppress(aioredis.ResponseError):  # BUSYGROUP: it exists
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        claimed: Any = await self._redis.xautoclaim(self._stream, self._group, self.node,
                                                    min_idle_time=0, start_id="0-0",
                                                    count=10_000)
        for entry_id, fields in claimed[1]:
            await self._answer(entry_id, fields, handle)
        while True:
            batches: Any = await self._redis.xreadgroup(
                self._group, self.node, {self._stream: ">"}, count=100, block=1000)
            for _, entries in batches or ():
                for entry_id, fields in entries:
                    await self._answer(entry_id, fields, handle)

    async def _answer(self, entry_id: str, fields: dict[str, str],
                      handle: Callable[[str, dict[str, Any]], Awaitable[Any]]) -> None:
        try:
            reply: dict[str, Any] = {"result": await handle(fields["op"],
                                                            json.loads(fields["args"]))}
        except CtlError as e:
            reply = {"error": {"message": str(e), "status": e.status, "code": e.code,
                               "hint": e.hint, "reason": e.reason, "params": e.params}}
        except Exception as e:
            log.exception("routing command %s failed", fields.get("op"))
            reply = {"error": {"message": f"{type(e).__name__}: {e}", "status": 500,
                               "code": "internal", "hint": None}}
        key = self._reply + fields["id"]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(key, json.dumps(reply))
            pipe.expire(key, 60)
            pipe.xack(self._stream, self._group, entry_id)
            pipe.xdel(self._stream, entry_id)
            await pipe.execute()

    # --- pushes to panels -----------------------------------------------------------

    def publisher(self) -> Callable[[str, Message], None]:
        """A Notifier.publish lookalike for the leader: out through Redis to every node.

        NOTE: what is published while a batch is on its way goes out together, in order,
        in one pipeline: a task and a PUBLISH round trip each, on a connection taken from
        the pool, were a tenth of the loop's time at 500 chat messages/s (two pushes a
        message), and pushes of one topic could overtake each other."""
        pending: list[str] = []
        sender: asyncio.Task[None] | None = None

        async def send() -> None:
            while pending:
                batch = pending.copy()
                pending.clear()
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for body in batch:
                            pipe.publish(self._push, body)
                        await pipe.execute()
                except (aioredis.RedisError, OSError) as e:
                    log.warning("%d routing pushes lost: %s", len(batch), e)

        def publish(topic: str, message: Message) -> None:
            nonlocal sender
            pending.append(json.dumps({"t": topic, "m": message}))
            if sender is None or sender.done():
                sender = asyncio.get_running_loop().create_task(send())

        return publish

    async def relay(self, notifier: Notifier) -> None:
        """Deliver the leader's pushes to this node's websockets, until cancelled."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._push)
        try:
            async for msg in pubsub.listen():
                if msg.get("type") == "message":
                    body = json.loads(msg["data"])
                    notifier.publish(body["t"], body["m"])
        finally:
            await pubsub.aclose()

    async def close(self) -> None:
        await self.resign()
        await self._redis.aclose()
        await self._calls.aclose()

