"""What a ticket looks like outside the database, and the checks on what may be put in it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ctl.errors import BadRequest, InvalidTransition
from ctl.store.models import CHANNELS, Ticket, TicketEvent

if TYPE_CHECKING:
    from ctl.tickets.rules import FieldDef

PRIORITIES = ("low", "normal", "high", "urgent")
# What update() may change directly; status has its own verbs (move, reply...).
EDITABLE = frozenset({"subject", "description", "priority", "category", "assignee_id",
                      "notify"})
_MAX_SUBJECT = 300


@dataclass(frozen=True)
class TicketView:
    id: str
    number: int
    subject: str
    description: str
    status: str
    priority: str
    category: str | None
    department: str | None
    assignee_id: str | None
    customer_id: str | None
    channel: str | None
    source: str
    task_contact_id: str | None
    tags: list[str]
    fields: dict[str, Any]
    attachments: list[str]
    notify: bool
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    response_due: datetime | None
    resolution_due: datetime | None
    sla_state: str
    version: int
    contact_ids: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in asdict(self).items()}


def view(t: Ticket, contact_ids: Iterable[str] = ()) -> TicketView:
    return TicketView(
        id=t.id, number=t.number, subject=t.subject, description=t.description,
        status=t.status, priority=t.priority, category=t.category, department=t.department,
        assignee_id=t.assignee_id, customer_id=t.customer_id, channel=t.channel,
        source=t.source, task_contact_id=t.task_contact_id, tags=list(t.tags),
        fields=dict(t.fields), attachments=list(t.attachments), notify=t.notify,
        created_at=t.created_at, updated_at=t.updated_at,
        first_response_at=t.first_response_at, resolved_at=t.resolved_at,
        closed_at=t.closed_at, response_due=t.response_due, resolution_due=t.resolution_due,
        sla_state=t.sla_state, version=t.version, contact_ids=list(contact_ids))


def event_json(e: TicketEvent) -> dict[str, Any]:
    return {"id": e.id, "at": e.at.isoformat(), "kind": e.kind, "actor": e.actor,
            "public": e.public, "data": e.data}


def subject(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("a ticket needs a subject (non-empty text)")
    if len(value) > _MAX_SUBJECT:
        raise BadRequest(f"subject is {len(value)} characters; at most {_MAX_SUBJECT}")
    return value.strip()


def priority(value: Any) -> str:
    if value not in PRIORITIES:
        raise BadRequest(f"unknown priority {value!r}", hint=f"one of: {', '.join(PRIORITIES)}")
    return str(value)


def channel(value: Any) -> str | None:
    if value is not None and value not in CHANNELS:
        raise BadRequest(f"unknown channel {value!r}",
                         hint=f"one of: {', '.join(sorted(CHANNELS))}")
    return value  # type: ignore[no-any-return]


def tags(values: Any) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence) or \
            not all(isinstance(v, str) and v.strip() for v in values):
        raise BadRequest("tags must be a list of non-empty strings")
    return sorted({v.strip() for v in values})


def changes(values: dict[str, Any]) -> dict[str, Any]:
    """The fields of update() checked one by one; an unknown field is an error, not ignored."""
    unknown = set(values) - EDITABLE
    if unknown:
        raise BadRequest(f"cannot update {', '.join(sorted(unknown))}",
                         hint=f"editable: {', '.join(sorted(EDITABLE))}; status, tags, "
                              "fields and department have their own requests")
    out = dict(values)
    if "subject" in out:
        out["subject"] = subject(out["subject"])
    if "priority" in out:
        out["priority"] = priority(out["priority"])
    if "description" in out and not isinstance(out["description"], str):
        raise BadRequest("description must be text")
    if "notify" in out and not isinstance(out["notify"], bool):
        raise BadRequest("notify must be true or false")
    for name in ("category", "assignee_id"):
        if name in out and not isinstance(out[name], str | None):
            raise BadRequest(f"{name} must be text or null")
    return out


def fields(values: Any, defs: Sequence[FieldDef]) -> dict[str, Any]:
    """Custom field values checked against the admins' definitions (none: anything goes).
    None removes a field."""
    if not isinstance(values, dict):
        raise BadRequest("fields must be an object of name -> value")
    if not defs:
        return dict(values)
    known = {d.name: d for d in defs}
    for name, value in values.items():
        d = known.get(name)
        if d is None:
            raise BadRequest(f"unknown custom field {name!r}",
                             hint=f"fields: {', '.join(sorted(known))}")
        if value is not None and d.choices is not None and value not in d.choices:
            raise BadRequest(f"field {name!r} cannot be {value!r}",
                             hint=f"one of: {', '.join(map(str, d.choices))}")
    return dict(values)


def require_fields(values: dict[str, Any], defs: Sequence[FieldDef], number: int) -> None:
    missing = [d.name for d in defs if d.required and values.get(d.name) is None]
    if missing:
        raise InvalidTransition(f"ticket #{number} cannot be resolved without "
                                f"{', '.join(missing)}", hint="set these custom fields first")
