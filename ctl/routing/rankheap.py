"""The routing buckets' heap of contact orders (queues.Bucket), in Python: what runs when
its C twin, _rankheap.c, is not built (or with CTL_ROUTING_PURE=1). Both pop the least
order first; the C one compares the orders' ranks (queues.rank_of) as C integers first,
which this one has no use for."""

from __future__ import annotations

import heapq


class RankHeap:
    __slots__ = ("_orders",)

    def __init__(self) -> None:
        self._orders: list[int] = []

    def push(self, rank: int, order: int) -> None:
        heapq.heappush(self._orders, order)

    def peek(self) -> int | None:
        """The least order, or None if empty."""
        return self._orders[0] if self._orders else None

    def pop(self) -> int:
        return heapq.heappop(self._orders)

    def orders(self) -> list[int]:
        """Every order held, in no given order."""
        return list(self._orders)

    def __len__(self) -> int:
        return len(self._orders)
