"""Rate limits: a token bucket per key (sender or recipient on a channel), in memory.

Per process: with several controllers each enforces its own buckets, so the effective
limit is at most the number of nodes times this one. That bounds abuse, which is the
point; exact cluster-wide accounting would cost a Redis round trip per message.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ctl.errors import CtlError


class RateLimited(CtlError):
    status = 429
    code = "rate_limited"


class Limiter:
    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 keys: int = 100_000) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._keys = keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, what: str) -> None:
        """Spend one token of `key`, or raise RateLimited naming `what`."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self._rate
            raise RateLimited(f"too many messages for {what}",
                              hint=f"retry in {wait:.0f} s")
        self._buckets[key] = (tokens - 1.0, now)
        while len(self._buckets) > self._keys:  # forget the least recently seen senders
            self._buckets.popitem(last=False)
