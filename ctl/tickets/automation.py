"""What happens to tickets without anyone asking: the admins' rules after each change, and
the SLA watch (warnings and breaches on the service's clock, then the rules for them).

Changes made by rules do not trigger rules again (a rule moving a ticket to a department
whose rule moves it back would loop): while rules apply, the hook stands aside.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ctl.errors import CtlError
from ctl.routing.model import Assigned
from ctl.tickets.model import TicketView
from ctl.tickets.rules import Rule
from ctl.tickets.service import TicketService

log = logging.getLogger(__name__)
_APPLYING: contextvars.ContextVar[bool] = contextvars.ContextVar("rules_applying",
                                                                 default=False)
_RANK = {"none": 0, "paused": 0, "ok": 1, "warning": 2, "breached": 3}
# A notification to send: (ticket, template name).
Notify = Callable[[TicketView, str], Awaitable[object]]


def _event(what: str) -> str | None:
    if what == "created":
        return "create"
    if what == "customer_reply":
        return "customer_reply"
    if what.startswith(("sla_", "notif")):
        # sweep() evaluates SLA events itself, after recording them; a notification
        # recorded is no change to the ticket (and a rule notifying on update would loop)
        return None
    return "update"


class Automation:
    def __init__(self, tickets: TicketService, notify: Notify | None = None) -> None:
        self.tickets = tickets
        self.notify = notify
        tickets.hooks.append(self.on_change)

    async def on_change(self, ticket: TicketView, what: str) -> TicketView | None:
        event = _event(what)
        if event is None or _APPLYING.get():
            return None
        return await self.apply(event, ticket)

    async def apply(self, event: str, ticket: TicketView) -> TicketView:
        """Run the rules for `event` on `ticket`; the ticket as they left it."""
        fired = self.tickets.config.rules.matching(event, ticket)
        if not fired:
            return ticket
        token = _APPLYING.set(True)
        try:
            for rule in fired:
                ticket = await self._act(rule, ticket)
        finally:
            _APPLYING.reset(token)
        return ticket

    async def _act(self, rule: Rule, t: TicketView) -> TicketView:
        actor, then, svc = f"rule:{rule.name}", rule.then, self.tickets
        if then.priority and then.priority != t.priority:
            t = await svc.update(t.id, {"priority": then.priority}, actor=actor)
        if then.add_tags and not set(then.add_tags) <= set(t.tags):
            t = await svc.tag(t.id, add=then.add_tags, actor=actor)
        if then.note:
            t = await svc.note(t.id, then.note, actor=actor)
        if then.department and then.department != t.department and svc.departments:
            t = await svc.transfer(t.id, then.department, reason=f"rule {rule.name}",
                                   actor=actor)
        if then.notify and self.notify is not None:
            await self.notify(t, then.notify)
        return t

    async def on_routing(self, events: list[Any]) -> None:
        """Routing listener: the agent who takes a ticket's task is its assignee, and a
        new or reopened ticket is then being worked on (open)."""
        for e in events:
            if not isinstance(e, Assigned):
                continue
            ticket_id = await self.tickets.ticket_of_task(e.contact_id)
            if ticket_id is None:
                continue
            t = await self.tickets.get(ticket_id)
            if t.task_contact_id != e.contact_id:
                continue  # an old task (transferred since)
            t = await self.tickets.update(t.id, {"assignee_id": e.agent_id}, actor="routing")
            if t.status in ("new", "reopened"):
                await self.tickets.move(t.id, "open", reason="taken by an agent",
                                        actor="routing")

    async def sweep(self) -> list[tuple[int, str]]:
        """Check every running SLA clock at the service's `now`; record warnings and
        breaches, then run their rules. Returns (ticket number, new state) for each."""
        now, sla = self.tickets.clock(), self.tickets.config.sla
        changed, after = [], 0
        while batch := await self.tickets.running_clocks(now, after=after):
            after = batch[-1].number
            for t in batch:
                state = sla.state(priority=t.priority, created_at=t.created_at, now=now,
                                  response_due=t.response_due,
                                  resolution_due=t.resolution_due,
                                  responded=t.first_response_at is not None,
                                  resolved=t.resolved_at is not None)
                if _RANK[state] <= _RANK[t.sla_state]:
                    continue
                marked = await self.tickets.mark_sla(t.id, state)
                changed.append((t.number, state))
                await self.apply("sla_breach" if state == "breached" else "sla_warning", marked)
        return changed

    async def run(self, every: float = 30.0) -> None:
        """sweep() forever (a task of the controller that leads)."""
        while True:
            try:
                await self.sweep()
            except (CtlError, OSError) as e:
                log.warning("SLA sweep failed: %s", e)
            await asyncio.sleep(every)
