"""The waiting side: contacts grouped by what they require, each group a priority heap.

A queue of 100,000 contacts is never scanned to route one. Contacts that require the same
thing (channel and routing step) wait in one bucket, a heap ordered by priority then age;
an agent that frees up looks only at the heads of the buckets it qualifies for. Heaps
delete lazily: an entry is live only while its contact still points at it.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from ctl.routing.model import ANY, ContactRequest, QueueConfig, Requirement

# (-priority, enqueued_at, sequence, contact id): the smallest is served first.
Order = tuple[int, float, int, str]

_sequence = itertools.count()


class Live:
    """A contact the engine holds, from enqueue until it no longer occupies an agent."""

    __slots__ = ("agent", "bucket", "entry", "excluded", "offers", "order", "queue",
                 "queued_at", "req", "state", "step")

    def __init__(self, req: ContactRequest) -> None:
        self.req = req
        self.queue = req.queue
        self.queued_at = req.enqueued_at  # entry into its current queue (overflow moves it)
        self.order: Order = (-req.priority, req.enqueued_at, next(_sequence), req.id)
        self.step = 0
        self.state = "queued"  # queued | offered | assigned | wrapup
        self.bucket: Bucket | None = None
        self.entry: Order | None = None
        self.offers: set[str] = set()
        self.excluded: set[str] = set()  # agents who declined or missed it
        self.agent: str | None = None

    @property
    def requirement(self) -> Requirement:
        steps = self.req.steps
        return steps[self.step].require if self.step < len(steps) else ANY

    def step_expiry(self) -> float | None:
        """When the step in force ends (None: never)."""
        steps = self.req.steps
        if self.step >= len(steps):
            return None
        after = steps[self.step].expires_after
        return None if after is None else self.req.enqueued_at + after


@dataclass(eq=False)
class Bucket:
    queue: str
    channel: str
    requirement: Requirement
    heap: list[Order] = field(default_factory=list)
    size: int = 0  # live entries

    def push(self, live: Live) -> None:
        o = live.order
        # A new tuple each time: identity tells this entry from one left by an earlier stay
        # (a requeued contact keeps its order, so equality cannot).
        entry = (o[0], o[1], o[2], o[3])
        live.bucket, live.entry = self, entry
        heapq.heappush(self.heap, entry)
        self.size += 1

    def drop(self, live: Live) -> None:
        """Forget `live` (its heap entry goes stale and is discarded when it surfaces)."""
        live.bucket, live.entry = None, None
        self.size -= 1

    def head(self, contacts: dict[str, Live]) -> Live | None:
        heap = self.heap
        while heap:
            top = heap[0]
            live = contacts.get(top[3])
            if live is not None and live.entry is top and live.bucket is self:
                return live
            heapq.heappop(heap)
        return None

    def in_order(self, contacts: dict[str, Live]) -> list[Live]:
        """Every live contact, best first: for the rare walks past the head."""
        out = []
        for order in sorted(self.heap):
            live = contacts.get(order[3])
            if live is not None and live.entry is order and live.bucket is self:
                out.append(live)
        return out


class QueueState:
    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self.buckets: dict[tuple[str, Requirement], Bucket] = {}
        self.waiting = 0  # queued or offered: what max_length counts
        self.delays: set[float] = set()  # profile delays agents have on this queue

    def bucket(self, channel: str, requirement: Requirement) -> tuple[Bucket, bool]:
        key = (channel, requirement)
        found = self.buckets.get(key)
        if found is not None:
            return found, False
        made = self.buckets[key] = Bucket(self.config.name, channel, requirement)
        return made, True
