"""Queue alerts: thresholds crossed by the live figures. Pure: the service feeds it the
queues' views and the time, and tells supervisors what changed.

An alert is raised once when its figure crosses the threshold and cleared once when the
figure is back, so a panel opened at any time sees the same list the pushes built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ctl.supervision.settings import AlertSettings


@dataclass(frozen=True, slots=True)
class Alert:
    queue: str
    kind: str  # longest_wait | service_level | waiting
    value: float  # the figure when it crossed
    threshold: float
    since: float  # epoch seconds on the routing clock

    def view(self) -> dict[str, Any]:
        return asdict(self)


def crossed(view: dict[str, Any], limits: AlertSettings) -> dict[str, tuple[float, float]]:
    """kind -> (value, threshold) for each figure of one queue's view past its limit."""
    out: dict[str, tuple[float, float]] = {}
    if limits.longest_wait is not None and view["waiting"] \
            and view["oldest_wait"] >= limits.longest_wait:
        out["longest_wait"] = (view["oldest_wait"], limits.longest_wait)
    level = view["service_level"]
    if limits.service_level is not None and level is not None and level < limits.service_level:
        out["service_level"] = (level, limits.service_level)
    if limits.waiting is not None and view["waiting"] > limits.waiting:
        out["waiting"] = (float(view["waiting"]), float(limits.waiting))
    return out


class Alerts:
    def __init__(self) -> None:
        self.active: dict[tuple[str, str], Alert] = {}

    def update(self, views: Iterable[dict[str, Any]],
               limits: Callable[[str], AlertSettings], now: float
               ) -> tuple[list[Alert], list[Alert]]:
        """(raised, cleared) since the last update."""
        raised: list[Alert] = []
        seen: set[tuple[str, str]] = set()
        names: set[str] = set()
        for view in views:
            names.add(view["name"])
            for kind, (value, threshold) in crossed(view, limits(view["name"])).items():
                key = (view["name"], kind)
                seen.add(key)
                if key not in self.active:
                    self.active[key] = alert = Alert(view["name"], kind, value, threshold, now)
                    raised.append(alert)
        cleared = [self.active.pop(k) for k in list(self.active)
                   if k not in seen and k[0] in names]
        return raised, cleared

    def next_due(self, views: Iterable[dict[str, Any]],
                 limits: Callable[[str], AlertSettings], now: float) -> float | None:
        """When a longest-wait alert not raised yet would be, if nothing else happens: the
        one figure that grows with time alone (the others change only with events)."""
        due: list[float] = []
        for view in views:
            limit = limits(view["name"]).longest_wait
            if limit is not None and view["waiting"] \
                    and (view["name"], "longest_wait") not in self.active:
                due.append(now + max(0.0, limit - view["oldest_wait"]))
        return min(due, default=None)

    def listed(self) -> list[dict[str, Any]]:
        return [a.view() for a in sorted(self.active.values(), key=lambda a: a.since)]
