"""The waiting side: contacts grouped by what they require, each group a priority heap.

A queue of 100,000 contacts is never scanned to route one. Contacts that require the same
thing (channel and routing step) wait in one bucket, a heap ordered by priority then age.
The heads of the non-empty buckets are kept sorted on shelves, one per queue, channel and
set of required skill names (whatever the levels). An agent that frees up walks only the
shelves of sets of skills it has, each best first, and stops at the first head it
qualifies for (only a level, a language or a tier can still rule it out) or that is no
better than what it found: neither the number of waiting contacts nor that of buckets of
skills it lacks comes into its cost. Contacts for one agent (sticky routing, transfers)
are on no shelf: the engine keeps their buckets by agent. Heaps delete lazily: an entry
is live only while its bucket still has a contact of that order.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

from ctl.routing import NATIVE_HEAP, rankheap
from ctl.routing.model import ANY, ContactRequest, QueueConfig, Requirement

# A contact's place: (-priority, enqueued_at, arrival sequence) as one integer that sorts
# like that tuple, the smallest served first (order_key). Heaps and shelves compare one
# int each time instead of tuples element by element (and a tuple's float is one more
# object to fetch from memory): a decision makes a few dozen such comparisons.
Order = int

_sequence: Final = itertools.count()
_NONE: Final[frozenset[str]] = frozenset()
_SIGN: Final = 1 << 63
_ALL: Final = (1 << 64) - 1
# An order's rank (rank_of) is small enough for mypyc to keep unboxed in a native attribute
# and compare without touching the order's int object (one more fetch from memory each
# time a shelf is looked at): shelves and walks compare ranks, and orders only on a tie.
_RANK_MAX: Final = 1 << 61
EMPTY: Final = _RANK_MAX + 1  # the rank of an empty shelf: after every head


def order_key(priority: int, enqueued_at: float, sequence: int) -> int:
    """(-priority, enqueued_at, sequence) packed into one int of the same order: any
    priority, any float time but NaN, a sequence below 2**64. The float's IEEE 754 bits
    sort like it once a negative one's are all flipped and a positive one's sign bit set."""
    if enqueued_at == 0.0:
        enqueued_at = 0.0  # -0.0 equals 0.0, as in a tuple's comparison
    bits: int = int.from_bytes(struct.pack(">d", enqueued_at), "big")
    bits ^= _ALL if bits & _SIGN else _SIGN
    return (-priority << 128) + (bits << 64) + sequence


def rank_of(order: Order) -> int:
    """A coarse order: rank_of(a) < rank_of(b) means a < b, and a < b means rank_of(a) <=
    rank_of(b) (a shift and a clamp keep the order). For priorities 0-511 it is exact to
    the 40 first bits of the time's mantissa (a millisecond in epoch seconds): ties are
    contacts of one priority enqueued that close together."""
    return max(-_RANK_MAX, min(order >> 76, _RANK_MAX))


def before(rank: int, order: Order, other_rank: int, other: Order) -> bool:
    """order < other, looking at the orders only when their ranks tie."""
    return rank < other_rank or (rank == other_rank and order < other)


class Heap(Protocol):
    """A bucket's contacts by order, the least first: _rankheap.c's RankHeap, or
    rankheap.py's. Its items are Live."""

    def push(self, rank: int, order: Order, item: object) -> None: ...
    def peek(self) -> object: ...
    def pop(self) -> object: ...
    def orders(self) -> list[Order]: ...
    def items(self) -> list[object]: ...
    def __len__(self) -> int: ...


new_heap: Callable[[], Heap] = rankheap.RankHeap
if NATIVE_HEAP:
    from ctl.routing._rankheap import RankHeap

    new_heap = RankHeap


def _order(live: Live) -> Order:
    return live.order


class Live:
    """A contact the engine holds, from enqueue until it no longer occupies an agent."""

    __slots__ = ("agent", "bucket", "callback", "excluded", "offers", "order",
                 "queue", "queued_at", "rank", "req", "state", "step")

    def __init__(self, req: ContactRequest) -> None:
        self.req = req
        self.queue = req.queue
        self.queued_at = req.enqueued_at  # entry into its current queue (overflow moves it)
        self.order: Order = order_key(req.priority, req.enqueued_at, next(_sequence))
        self.rank: int = rank_of(self.order)
        self.step = 0
        self.state = "queued"  # queued | offered | assigned | wrapup
        self.bucket: Bucket | None = None
        # Immutable, and one shared empty set until needed: a waiting contact then holds
        # two fewer objects for the garbage collector to walk (see bench/README.md). Its
        # pending offers are a tuple (one offer, mostly; ring-all makes a few): cheaper to
        # make than a set, once per decision, and one the collector stops tracking.
        self.offers: tuple[str, ...] = ()
        self.excluded: frozenset[str] = _NONE  # agents who declined or missed it
        self.agent: str | None = None
        # Overflowed to a callback: waits on in its place without a caller on the line,
        # and never overflows again.
        self.callback = False

    def drop_offer(self, offer_id: str) -> None:
        self.offers = tuple([o for o in self.offers if o != offer_id])

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
    shelf: Shelf | None  # None: sticky (contacts for one agent)
    # Its contacts by order, lazily deleted: an entry is live while its contact's bucket
    # is this one. A contact put back (declined, timed out) keeps its order, so a stale
    # copy of it may still be in the heap: it is the same contact, and either copy leaves
    # with it. (A contact never comes back to a bucket it moved on from: steps only go
    # forward, and a transfer makes a new one.)
    heap: Heap = field(default_factory=new_heap)
    size: int = 0  # its contacts (the heap may hold stale copies)
    listed: Order = 0  # the head's order, as on the shelf
    rank: int = EMPTY  # the head's rank; EMPTY: no head, not on the shelf
    top: Live | None = None  # the head
    # When the requirement is no more than two skills (almost always), they are here, read
    # by walks from the bucket itself: an agent qualifies if its levels reach level1 and
    # level2 (0: no skill). Otherwise Requirement.admits decides.
    simple: bool = False
    skill1: str = ""
    level1: int = 0
    skill2: str = ""
    level2: int = 0

    def __post_init__(self) -> None:
        req = self.requirement
        skills = req.skills
        self.simple = len(skills) <= 2 and not req.languages and not req.tiers \
            and req.agent is None
        if skills:
            self.skill1, self.level1 = skills[0]
        if len(skills) > 1:
            self.skill2, self.level2 = skills[1]

    def push(self, live: Live) -> None:
        order = live.order
        live.bucket = self
        self.size += 1
        self.heap.push(live.rank, order, live)
        if before(live.rank, order, self.rank, self.listed):
            self._list(live)

    def drop(self, live: Live) -> None:
        """Forget `live` (its heap entry goes stale and is discarded when it surfaces)."""
        live.bucket = None
        self.size -= 1
        if live is self.top:
            self._list(self.head())

    def _list(self, head: Live | None) -> None:
        """Keep the bucket's place on its shelf: under its head's order, or off if empty."""
        shelf = self.shelf
        if shelf is not None and self.rank != EMPTY:
            del shelf.buckets[shelf.find(self.rank, self.listed)]
        if head is None:
            self.listed, self.rank, self.top = 0, EMPTY, None
        else:
            self.listed, self.rank, self.top = head.order, head.rank, head
            if shelf is not None:
                shelf.buckets.insert(shelf.find(head.rank, head.order), self)
        if shelf is not None:
            buckets = shelf.buckets
            shelf.best = buckets[0].rank if buckets else EMPTY

    def head(self) -> Live | None:
        heap = self.heap
        while True:
            live = cast("Live | None", heap.peek())
            if live is None or live.bucket is self:
                return live
            heap.pop()

    def in_order(self) -> list[Live]:
        """Every live contact, best first: for the rare walks past the head."""
        return sorted(self.contacts(), key=_order)

    def contacts(self) -> list[Live]:
        """Its contacts, in no given order."""
        live = {id(c): c for c in cast("list[Live]", self.heap.items()) if c.bucket is self}
        return list(live.values())


class Shelf:
    """The non-empty buckets of a queue's channel and set of skill names, sorted by their
    heads' order. A plain list: a shelf holds at most a few dozen buckets (the levels of a
    set of skills), where a binary search and list.insert beat a SortedList. `best` is the
    first one's rank, read by walks without touching the list (EMPTY: none)."""

    __slots__ = ("best", "buckets")

    def __init__(self) -> None:
        self.buckets: list[Bucket] = []
        self.best = EMPTY

    def find(self, rank: int, order: Order) -> int:
        """Where a head of this order is or goes (orders are unique)."""
        buckets = self.buckets
        lo, hi = 0, len(buckets)
        while lo < hi:
            mid = (lo + hi) >> 1
            b = buckets[mid]
            if before(b.rank, b.listed, rank, order):
                lo = mid + 1
            else:
                hi = mid
        return lo


class QueueState:
    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self.buckets: dict[tuple[str, Requirement], Bucket] = {}
        # Per channel, per set of required skill names: (head's order, bucket), sorted.
        # Empty ones too: an agent's first walk makes one for each set of its skills.
        self.shelves: dict[str, dict[frozenset[str], Shelf]] = {}
        # Shelves are never removed, so their number per channel changes exactly when one
        # is made (AgentRt.shelves keeps an agent's own until then).
        self.waiting = 0  # queued or offered: what max_length counts
        self.delays: set[float] = set()  # profile delays agents have on this queue

    def bucket(self, channel: str, requirement: Requirement) -> tuple[Bucket, bool]:
        key = (channel, requirement)
        found = self.buckets.get(key)
        if found is not None:
            return found, False
        shelf = None
        if requirement.agent is None:
            shelves = self.shelves.setdefault(channel, {})
            names = frozenset(s for s, _ in requirement.skills)
            shelf = shelves.get(names)
            if shelf is None:
                shelf = shelves[names] = Shelf()
        made = self.buckets[key] = Bucket(self.config.name, channel, requirement, shelf)
        return made, True
