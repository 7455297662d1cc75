"""Queue alerts with the real routing service on a test clock (SQLite and PostgreSQL, no
Asterisk): raised once when a figure crosses its threshold, cleared when it is back,
pushed to supervisors and listed; the longest wait crosses with time alone."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from ctl.agents.service import AgentService, RoutingChanges
from ctl.contacts.service import ContactService
from ctl.routing.notifier import Notifier
from ctl.routing.service import RoutingService
from ctl.settings import QueueSettings, RoutingSettings
from ctl.store.db import Database
from ctl.store.live import make_live
from ctl.supervision.monitor import Monitors
from ctl.supervision.service import SupervisionService
from ctl.supervision.settings import AlertSettings
from ctl.telephony.ari import AriClient
from ctl.telephony.calls import CallManager
from ctl.telephony.queueing import VoiceQueues
from tests.integration.harness import eventually
from tests.integration.tickets_db import ticket_db

__all__ = ["ticket_db"]


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


async def next_alert(inbox: asyncio.Queue[dict[str, Any]]) -> tuple[str, str, str]:
    while True:
        msg = await asyncio.wait_for(inbox.get(), 5)
        if msg["type"] == "alert":
            return msg["state"], msg["alert"]["queue"], msg["alert"]["kind"]


async def settled(routing: RoutingService) -> None:
    """Routing's listeners run as tasks: let the ones just started finish."""
    for _ in range(20):
        await asyncio.sleep(0)
    async with routing._lock:
        pass


async def test_alerts_raised_once_and_cleared(ticket_db: Database) -> None:
    db, clock, notifier = ticket_db, Clock(), Notifier()
    queue = f"q{uuid.uuid4().hex[:6]}"
    settings = RoutingSettings(queues=[QueueSettings(  # type: ignore[call-arg]
        name=queue, sla_seconds=10,
        alerts=AlertSettings(longest_wait=60, service_level=0.8, waiting=1))])
    routing = RoutingService(db, settings, notifier, clock=clock)
    await routing.start()
    ari = AriClient("http://127.0.0.1:9", "ctl", "unused", "ctl")  # never called here
    contacts = ContactService(db)
    calls = CallManager(ari, contacts, make_live(None), {}, "n1", "US")
    voice = VoiceQueues(ari, routing, db, calls)
    sup = SupervisionService(routing, Monitors(ari, calls, voice, routing, contacts,
                                               notifier.publish, voice._endpoint),
                             notifier.publish)
    agents = AgentService(db)
    agent, _ = await agents.create(f"a{uuid.uuid4().hex[:8]}", "Ann",
                                   str(5000000 + uuid.uuid4().int % 1000000))
    await agents.configure(agent.username, RoutingChanges(profile=[{"queue": queue}],
                                                          capacity={"chat": 1}))
    try:
        with notifier.subscribe("supervisor") as inbox:
            first = (await contacts.open("chat")).id
            await routing.enqueue(first, queue)
            async def evaluated() -> bool:
                return sup._timer is not None  # woken when the wait would reach 60 s

            await eventually(evaluated, 5, "alerts evaluated after the enqueue")
            assert sup.alerts.listed() == []  # one waiting, for 0 s: nothing crossed

            clock.t += 61  # nothing happens but time
            sup.check()
            assert await next_alert(inbox) == ("raised", queue, "longest_wait")
            sup.check()  # still crossed: not raised again
            assert [a["kind"] for a in sup.alerts.listed()] == ["longest_wait"]

            second = (await contacts.open("chat")).id
            await routing.enqueue(second, queue)  # two waiting, over the limit of one
            assert await next_alert(inbox) == ("raised", queue, "waiting")

            # The agent takes the first (61 s: outside the 10 s SLA): service level 0 %;
            # the oldest now waits 0 s and one waits: both other alerts clear.
            await routing.set_state(agent.id, "available")
            offer = next(o for o in routing.engine.offers.values() if o.contact_id == first)
            await routing.accept(agent.id, offer.id)
            await settled(routing)
            got = {await next_alert(inbox) for _ in range(3)}
            assert got == {("raised", queue, "service_level"),
                           ("cleared", queue, "longest_wait"), ("cleared", queue, "waiting")}
            overview = await sup.overview()
            assert [a["kind"] for a in overview["alerts"]] == ["service_level"]
            me = next(a for a in overview["agents"] if a["id"] == agent.id)
            assert me["status"] == "available" and me["since"] == clock.t
            left = [inbox.get_nowait() for _ in range(inbox.qsize())]
            assert not [m for m in left if m["type"] == "alert"], left  # each one once
    finally:
        await sup.stop()
        await routing.stop()
        await ari.close()
