"""Pushes to whoever listens: an agent's panel (`agent:<id>`), supervisors (`supervisor`).

A listener that cannot keep up is cut off rather than allowed to grow memory: its panel
reconnects and reads the whole current state again, which is what it needs anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)
Message = dict[str, Any]
CLOSED: Message = {"type": "closed", "reason": "too_slow"}


class Notifier:
    def __init__(self, backlog: int = 256) -> None:
        self._backlog = backlog
        self._subs: defaultdict[str, set[asyncio.Queue[Message]]] = defaultdict(set)

    def publish(self, topic: str, message: Message) -> None:
        for queue in list(self._subs.get(topic, ())):
            if queue.qsize() >= self._backlog - 1:
                self._subs[topic].discard(queue)
                queue.put_nowait(CLOSED)
                log.warning("a listener of %s fell %d pushes behind: cut off", topic,
                            self._backlog)
            else:
                queue.put_nowait(message)

    @contextlib.contextmanager
    def subscribe(self, topic: str) -> Iterator[asyncio.Queue[Message]]:
        queue: asyncio.Queue[Message] = asyncio.Queue(self._backlog)
        self._subs[topic].add(queue)
        try:
            yield queue
        finally:
            self._subs[topic].discard(queue)
            if not self._subs[topic]:
                del self._subs[topic]

    def listeners(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))
