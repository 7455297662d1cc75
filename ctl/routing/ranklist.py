"""The agent index's sorted lists of agent ids (policies.AgentIndex), in Python: what runs
when its C twin, _ranklist.c, is not built (or with CTL_ROUTING_PURE=1). Both keep ids
in (rank, id) order; the C one holds ranks as 128-bit integers in one array, which this
one has no use for."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator


class RankList:
    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[tuple[int, str]] = []

    def add(self, rank: int, id: str) -> None:
        """Put the id in its place, by rank and then id."""
        insort(self._entries, (rank, id))

    def discard(self, rank: int, id: str) -> None:
        """Remove that entry (KeyError if it is not there)."""
        entries = self._entries
        at = bisect_left(entries, (rank, id))
        if at == len(entries) or entries[at] != (rank, id):
            raise KeyError((rank, id))
        del entries[at]

    def __iter__(self) -> Iterator[str]:
        return (id for _, id in self._entries)

    def __len__(self) -> int:
        return len(self._entries)
