"""The supervisor's live picture, on the leader: queues, agents with the time in their
state, alerts; and the actions (listen in, take over) that go with it.

Alerts are evaluated whenever routing reports events (every change of a queue's figures
comes with one) and once more at the one instant a waiting contact's age would cross a
threshold with nothing else happening: no polling loop. A queue's figures walk its
contacts, so a burst of events is evaluated once, `_SETTLE` seconds after it began.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ctl.routing.model import AgentChanged, Event
from ctl.routing.notifier import Message
from ctl.routing.service import RoutingService
from ctl.routing.views import queue_view
from ctl.supervision.alerts import Alert, Alerts
from ctl.supervision.monitor import Monitors
from ctl.supervision.settings import AlertSettings

TOPIC = "supervisor"
_SETTLE = 0.2  # seconds: at most this late, at most this often under load


class SupervisionService:
    def __init__(self, routing: RoutingService, monitors: Monitors,
                 publish: Callable[[str, Message], None]) -> None:
        self.routing, self.monitors = routing, monitors
        self.publish = publish
        self.alerts = Alerts()
        self.since: dict[str, tuple[str, float]] = {}  # agent id -> (status, since)
        self._timer: asyncio.TimerHandle | None = None
        self._soon: asyncio.TimerHandle | None = None
        routing.listeners.append(self.on_routing)

    def limits(self, queue: str) -> AlertSettings:
        return self.routing.queue_settings(queue).alerts

    async def on_routing(self, events: list[Event]) -> None:
        now = self.routing.now()
        for e in events:
            if isinstance(e, AgentChanged):
                self._track(e.agent_id, now)
            elif (agent := getattr(e, "agent_id", None)) is not None:
                self._track(agent, now)  # wrap-up starts and ends without AgentChanged
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(_SETTLE, self.check)

    def _track(self, agent_id: str, now: float) -> None:
        if agent_id not in self.routing.engine.agents:
            return
        status = self.routing.engine.status(agent_id).value
        if self.since.get(agent_id, ("", 0.0))[0] != status:
            self.since[agent_id] = (status, now)

    def check(self) -> None:
        """Raise and clear alerts for the figures as they are now; wake up again when
        a waiting contact would cross a longest-wait threshold."""
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        engine, now = self.routing.engine, self.routing.now()
        views = [queue_view(engine, self.routing.stats, name, now) for name in engine.queues]
        raised, cleared = self.alerts.update(views, self.limits, now)
        for alert in raised:
            self._tell("raised", alert)
        for alert in cleared:
            self._tell("cleared", alert)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.alerts.next_due(views, self.limits, now)
        if due is not None:
            self._timer = asyncio.get_running_loop().call_later(
                max(0.0, due - now) + 0.01, self.check)

    def _tell(self, what: str, alert: Alert) -> None:
        self.publish(TOPIC, {"type": "alert", "state": what, "alert": alert.view()})

    async def monitor(self, supervisor_id: str, contact_id: str, mode: str
                      ) -> dict[str, Any]:
        return await self.monitors.start(supervisor_id, contact_id, mode)

    async def unmonitor(self, supervisor_id: str, contact_id: str) -> None:
        await self.monitors.stop(supervisor_id, contact_id)

    async def stop(self) -> None:
        await self.monitors.close()
        for handle in (self._timer, self._soon):
            if handle is not None:
                handle.cancel()
        self._timer = self._soon = None
        self.alerts = Alerts()
        self.since.clear()

    async def overview(self) -> dict[str, Any]:
        """Everything the supervisor view shows, in one read."""
        now = self.routing.now()
        agents = await self.routing.agents()
        for agent in agents:
            status, since = self.since.get(agent["id"], (agent["status"], None))
            agent["since"] = since if status == agent["status"] else None
        return {"now": now, "queues": await self.routing.queues(), "agents": agents,
                "alerts": self.alerts.listed(), "monitors": self.monitors.listed()}
