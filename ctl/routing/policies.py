"""The agent side: who is routable for what, kept in the order each queue's policy wants.

Only agents that are routable and found nothing eligible waiting sit in these lists: an
agent that frees up while contacts wait takes one at once and never enters them, so the
saturated case (many waiting, every agent busy) pays nothing here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from itertools import combinations
from typing import Final, Protocol

from ctl.routing import NATIVE_LIST, ranklist
from ctl.routing.model import (
    VOICE,
    AgentConfig,
    AgentStatus,
    Policy,
    ProfileEntry,
    QueueConfig,
    Requirement,
)
from ctl.routing.queues import Shelf

# Reading an enum member off its class costs ~80 ns in Python 3.11 (a global: ~10):
# routable() runs several times per routing decision.
AVAILABLE: Final = AgentStatus.AVAILABLE
_ROUND_ROBIN: Final = Policy.ROUND_ROBIN
_LEAST_OCCUPIED: Final = Policy.LEAST_OCCUPIED
_HIGHEST_PROFICIENCY: Final = Policy.HIGHEST_PROFICIENCY
ListKey = tuple[str, ...]  # (queue, channel) or (queue, channel, skill)
_SUBSETS_UP_TO: Final = 8  # skills; an agent with more checks a queue's shelves one by one


class AgentRt:
    """An agent as the engine sees it: configuration, state and what occupies it."""

    __slots__ = ("_capacity", "_channels", "_derived_from", "_levels", "_profile", "_room",
                 "_room_of", "_subsets",
                 "config", "contacts", "idle_since", "indexed", "last_offer",
                 "misses", "reason", "state", "total", "used", "walks")

    def __init__(self, config: AgentConfig, now: float) -> None:
        self.config = config
        self.state = AgentStatus.OFFLINE
        self.reason = ""
        self.used: dict[str, int] = {}  # per channel: offered, assigned or in wrap-up
        # Only take() and free() change `used` and `total`: open_channels() keeps its
        # answer for `_room_of` (the config it was computed from) until then.
        self._room: tuple[str, ...] | None = None
        self._room_of: AgentConfig | None = None
        self.total = 0
        self.contacts: set[str] = set()
        self.idle_since = now
        self.last_offer = 0
        self.misses = 0
        self.indexed: dict[ListKey, int] = {}  # its lists: its rank_code() in each
        self._derived_from: AgentConfig | None = None  # the config of what follows
        self._levels: dict[str, int] = {}  # its skills, as a dict the compiled code reads
        self._profile: list[ProfileEntry] = []  # its profile, lowest priority number first
        self._subsets: list[frozenset[str]] | None = None  # every set of its skills
        self._capacity: tuple[tuple[str, int], ...] = ()  # its capacity's items
        self._channels: tuple[str, ...] = ()  # those with room when it holds nothing
        # For each entry of `_profile`, by channel: (how many shelves it had, or -1 for all
        # its sets; the agent's). By position, not by a (queue, channel) key: hashing and
        # comparing that tuple cost more than the rest of the lookup.
        # profile_order() derives it (a walk reads it after that).
        self.walks: list[dict[str, tuple[int, list[Shelf]]]] = []

    def _derive(self) -> None:
        cfg = self._derived_from = self.config
        self._levels = dict(cfg.skills)
        self._profile = sorted(cfg.profile, key=lambda entry: entry.priority)
        self._capacity = tuple(cfg.capacity.items())
        self._channels = tuple([c for c, n in self._capacity if n > 0])
        names = sorted(cfg.skills)
        self._subsets = None if len(names) > _SUBSETS_UP_TO else [
            frozenset(c) for r in range(len(names) + 1) for c in combinations(names, r)]
        self.walks = [{} for _ in self._profile]

    @property
    def levels(self) -> dict[str, int]:
        """Its level of each of its skills."""
        if self._derived_from is not self.config:
            self._derive()
        return self._levels

    def profile_order(self) -> list[ProfileEntry]:
        if self._derived_from is not self.config:
            self._derive()
        return self._profile

    def shelves(self, at: int, channel: str, shelves: dict[frozenset[str], Shelf]
                ) -> list[Shelf]:
        """The shelves (see queues.py) of a channel of the queue of its profile entry `at`
        (in profile_order) that the agent may find
        something on: those of a set of skills it has, empty ones included (the caller
        skips them). The first time, the shelf of every set of its skills is made if there
        is none yet, so the list is complete for good: shelves are never removed, and
        they keep appearing as contacts arrive with new sets of skills (dozens between two
        walks of an agent at 100,000 waiting), which no longer sends it looking again. An
        agent with many skills looks at the queue's shelves instead, whenever more were
        made."""
        if self._derived_from is not self.config:
            self._derive()
        walks = self.walks[at]
        known = walks.get(channel)
        if known is not None and (known[0] < 0 or known[0] == len(shelves)):
            return known[1]
        subsets = self._subsets
        if subsets is None:  # many skills: walk the queue's shelves instead of its subsets
            has = self.config.skills.keys()
            mine = [shelf for names, shelf in shelves.items() if names <= has]
            walks[channel] = (len(shelves), mine)
            return mine
        mine = []
        for names in subsets:
            shelf = shelves.get(names)
            if shelf is None:
                shelf = shelves[names] = Shelf()
            mine.append(shelf)
        walks[channel] = (-1, mine)  # -1: complete whatever is made later
        return mine

    def open_channels(self) -> tuple[str, ...]:
        """The channels it is routable on now: (c for c in capacity if routable(c))."""
        if self.state is not AVAILABLE:
            return ()
        room = self._room  # computed again only after take/free or a new configuration
        if room is None or self._room_of is not self.config:
            room = self._room = self._open()
            self._room_of = self.config
        return room

    def _open(self) -> tuple[str, ...]:
        cfg = self.config
        if self._derived_from is not cfg:
            self._derive()
        if not self.total:
            return self._channels  # holds nothing: the common case after a contact ends
        used = self.used
        exclusive = cfg.voice_exclusive
        if exclusive and used.get(VOICE, 0):
            return ()  # a call takes the whole agent
        return tuple([c for c, n in self._capacity
                      if used.get(c, 0) < n and (c != VOICE or not exclusive)])

    def routable(self, channel: str) -> bool:
        return self.state is AVAILABLE and self.has_room(channel)

    def has_room(self, channel: str) -> bool:
        """Whether a contact of `channel` fits its capacity, whatever its state."""
        cfg = self.config
        if self.used.get(channel, 0) >= cfg.capacity.get(channel, 0):
            return False
        if cfg.voice_exclusive:
            return self.total == 0 if channel == VOICE else not self.used.get(VOICE, 0)
        return True

    def occupancy(self) -> float:
        capacity = sum(self.config.capacity.values())
        return self.total / capacity if capacity else 1.0

    def take(self, channel: str, contact_id: str) -> None:
        self.used[channel] = self.used.get(channel, 0) + 1
        self.total += 1
        self.contacts.add(contact_id)
        self._room = None

    def free(self, channel: str, contact_id: str) -> None:
        self.used[channel] -= 1
        self.total -= 1
        self.contacts.discard(contact_id)
        self._room = None


_F64: Final = struct.Struct(">d")
_SIGN: Final = 1 << 63
_BITS64: Final = (1 << 64) - 1
_LEVELS: Final = 1 << 62  # a skill level beyond this many ranks as this many (they fit 128 bits)


def _float_code(x: float) -> int:
    """An int that orders as `x` does: its bits, with negatives' flipped (-0.0 is 0.0)."""
    bits = int.from_bytes(_F64.pack(x + 0.0), "big")
    return bits ^ _BITS64 if bits & _SIGN else bits | _SIGN


def rank_code(agent: AgentRt, policy: Policy, skill: str | None, idle: int) -> int:
    """The agent's place in a list of `policy` (of `skill`), the agent's id aside, as one
    int of at most 127 bits and a sign: (last offer), (occupancy, idle since), (-level,
    idle since) or (idle since), each float as _float_code, which `idle` is of its
    idle_since (the occupancy's shifted into a signed 64 bits). The longest idle first, and
    ring-all's order."""
    if policy is _ROUND_ROBIN:
        return agent.last_offer
    if policy is _LEAST_OCCUPIED:
        return _float_code(agent.occupancy()) - _SIGN << 64 | idle
    if policy is _HIGHEST_PROFICIENCY and skill is not None:
        level = agent.config.skills.get(skill, 0)
        return -max(-_LEVELS, min(level, _LEVELS)) << 64 | idle
    return idle


class RankedIds(Protocol):
    """Agent ids in (rank, id) order: _ranklist.c's RankList, or ranklist.py's."""

    def add(self, rank: int, id: str) -> None: ...
    def discard(self, rank: int, id: str) -> None: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...


new_list: Callable[[], RankedIds] = ranklist.RankList
if NATIVE_LIST:
    from ctl.routing._ranklist import RankList

    new_list = RankList


class AgentIndex:
    # Sorted lists: only agents with room sit in them (a few hundred per list when
    # contacts wait, 10,000 at most), and an agent with room moves in all of its lists
    # each time its rank changes (when it frees up, takes a contact...). The C list
    # (_ranklist.c) keeps (rank, id) entries in one array: its binary searches compare C
    # integers, where a Python list's fetched an int object (a cache miss) at each step.
    def __init__(self) -> None:
        self.lists: dict[ListKey, RankedIds] = {}

    def reindex(self, agent: AgentRt, queues: dict[str, QueueConfig]) -> None:
        """Put `agent` in exactly the lists it belongs to now, under its current keys."""
        have = agent.indexed
        channels = agent.open_channels()
        if not channels and not have:
            return  # busy, and was: the common case when contacts wait
        cfg = agent.config
        want: dict[ListKey, int] = {}
        if channels:
            idle = _float_code(agent.idle_since)
            for entry in cfg.profile:
                queue = queues.get(entry.queue)
                if queue is None:
                    continue
                rank = rank_code(agent, queue.policy, None, idle)
                by_skill = queue.policy is _HIGHEST_PROFICIENCY  # else one rank for all
                for channel in channels:
                    want[(entry.queue, channel)] = rank
                    for skill in cfg.skills:
                        want[(entry.queue, channel, skill)] = \
                            rank_code(agent, queue.policy, skill, idle) if by_skill else rank
        if want == have:
            return
        agent_id = cfg.id
        lists = self.lists
        for key, value in have.items():
            if want.get(key) != value:
                lists[key].discard(value, agent_id)
        for key, value in want.items():
            if have.get(key) != value:
                found = lists.get(key)
                if found is None:
                    found = lists[key] = new_list()
                found.add(value, agent_id)
        agent.indexed = want

    def candidates(self, queue: QueueConfig, channel: str, requirement: Requirement
                   ) -> Iterator[str]:
        """Agent ids that may qualify, in the queue's policy order (the caller checks)."""
        lists = self.lists
        if requirement.agent is not None:
            yield requirement.agent
            return
        chosen = lists.get((queue.name, channel))
        if requirement.skills:
            if queue.policy is _HIGHEST_PROFICIENCY:
                # The first required skill orders the agents; the rest only filter.
                chosen = lists.get((queue.name, channel, requirement.skills[0][0]))
            else:
                # The rarest required skill gives the shortest walk.
                sizes = [lists.get((queue.name, channel, s)) for s, _ in requirement.skills]
                chosen = min(sizes, key=lambda sl: 0 if sl is None else len(sl))
        if chosen is not None:
            yield from chosen
