"""Departments: a ticket waiting for a department is a contact of channel `task` in that
department's routing queue, offered by the same engine as calls and chats (skills,
capacity, priority). Transferring the ticket ends that contact and enqueues a new one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from ctl.contacts.states import ContactState
from ctl.errors import CtlError, NotFound

# Ticket priority -> routing priority (higher is offered first).
PRIORITY = {"low": 0, "normal": 5, "high": 10, "urgent": 20}


class Intake(Protocol):
    """Services.intake: store a contact, then enqueue it."""

    async def __call__(self, channel: str, queue: str, priority: int = 0,
                       attributes: dict[str, Any] | None = None,
                       identity: dict[str, Any] | None = None, *,
                       customer_id: str | None = None) -> str: ...


End = Callable[[str, ContactState, str], Awaitable[None]]


class Departments:
    """Department name -> routing queue; by default every queue is a department."""

    def __init__(self, intake: Intake, end: End, queues: Mapping[str, str]) -> None:
        self._intake = intake
        self._end = end
        self.queues = dict(queues)

    def queue(self, department: str) -> str:
        try:
            return self.queues[department]
        except KeyError:
            raise NotFound(f"no department {department!r}",
                           hint=f"departments: {', '.join(sorted(self.queues))}") from None

    async def route(self, *, ticket_id: str, number: int, subject: str, priority: str,
                    department: str, customer_id: str | None) -> str:
        """Enqueue the ticket as a `task` contact in the department's queue; its id."""
        return await self._intake(
            "task", self.queue(department), PRIORITY.get(priority, 0),
            {"ticket_id": ticket_id, "ticket": number, "subject": subject,
             "department": department}, customer_id=customer_id)

    async def release(self, contact_id: str, reason: str) -> None:
        """The task is done here (transferred, resolved): routing frees its agent."""
        try:
            await self._end(contact_id, ContactState.CLOSED, reason)
        except CtlError as e:
            if e.status >= 500:
                raise
