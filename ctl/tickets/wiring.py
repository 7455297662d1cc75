"""Tickets assembled for the composition root (ctl/services.py): the service, its rules
and SLA watch, and customer notifications through the channels' outbound registry."""

from __future__ import annotations

from ctl.settings import Settings
from ctl.store.db import Database
from ctl.tickets import rules
from ctl.tickets.automation import Automation
from ctl.tickets.notify import Notifications, Sender, templates
from ctl.tickets.routing import Departments, End, Intake
from ctl.tickets.service import TicketService


def build(db: Database, settings: Settings, intake: Intake, end: End,
          sender: Sender) -> tuple[TicketService, Automation]:
    queues = [q.name for q in settings.routing.queues]
    path = settings.tickets_file
    config = rules.load(path, queues, templates()) if path else rules.TicketsConfig.empty(queues)
    service = TicketService(db, departments=Departments(intake, end, config.departments),
                            config=config)
    notes = Notifications(db, service, sender, language=config.language,
                          timezone=config.sla.calendar.tz)
    service.hooks.append(notes.on_change)
    return service, Automation(service, notify=notes.send)
