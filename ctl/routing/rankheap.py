"""The routing buckets' heap of contacts by order (queues.Bucket), in Python: what runs
when its C twin, _rankheap.c, is not built (or with CTL_ROUTING_PURE=1). Both give the
item of the least order first; the C one compares the orders' ranks (queues.rank_of) as
C integers first, which this one has no use for. An order is pushed again only with the
same item (a contact put back keeps its order), so ties never compare items."""

from __future__ import annotations

import heapq


class RankHeap:
    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[tuple[int, object]] = []

    def push(self, rank: int, order: int, item: object) -> None:
        heapq.heappush(self._entries, (order, item))

    def peek(self) -> object:
        """The item of the least order, or None if empty."""
        return self._entries[0][1] if self._entries else None

    def pop(self) -> object:
        """Remove the least order's entry; its item."""
        return heapq.heappop(self._entries)[1]

    def orders(self) -> list[int]:
        """Every order held, in no given order."""
        return [order for order, _ in self._entries]

    def items(self) -> list[object]:
        """Every item held, in no given order."""
        return [item for _, item in self._entries]

    def __len__(self) -> int:
        return len(self._entries)
