"""The customer 360's head: profile, identities, tags, tickets, merge audit; and search.

Reads only. Any logged-in agent may read a customer (an agent serving a call must see
who it is before any contact is theirs); identities are shown in full to agents and
never logged.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ctl.customers.identity import normalize_phone
from ctl.errors import BadRequest, NotFound
from ctl.store.models import (
    Contact,
    Customer,
    CustomerMerge,
    CustomerTag,
    Identity,
    Ticket,
)

_SEARCH_LIMIT = 20
_TICKETS = 50
_PHONEISH = re.compile(r"^\+?[0-9 ().\-]{3,}$")


async def load(s: AsyncSession, customer_id: str) -> Customer:
    found = await s.get(Customer, customer_id)
    if found is None:
        raise NotFound(f"no customer {customer_id}")
    return found


async def profile(s: AsyncSession, customer_id: str) -> dict[str, Any]:
    c = await load(s, customer_id)
    identities = await s.scalars(select(Identity).where(Identity.customer_id == c.id)
                                 .order_by(Identity.created_at, Identity.id))
    tickets = await s.scalars(select(Ticket).where(Ticket.customer_id == c.id)
                              .order_by(Ticket.created_at.desc()).limit(_TICKETS))
    channels = await s.scalars(select(Contact.channel).where(Contact.customer_id == c.id)
                               .distinct())
    merged_into = await s.get(Customer, c.merged_into) if c.merged_into else None
    return {
        "id": c.id, "name": c.display_name, "tier": c.tier, "language": c.language,
        "created_at": c.created_at.isoformat(),
        "merged_into": _ref(merged_into),
        "identities": [{"id": i.id, "kind": i.kind, "value": i.value, "verified": i.verified,
                        "created_at": i.created_at.isoformat()} for i in identities],
        "tags": await tags(s, c.id),
        "channels": sorted(channels),
        "tickets": [{"id": t.id, "number": t.number, "subject": t.subject, "status": t.status,
                     "priority": t.priority, "sla_state": t.sla_state,
                     "created_at": t.created_at.isoformat(),
                     "updated_at": t.updated_at.isoformat()} for t in tickets],
        "merges": await merges(s, c.id),
    }


async def tags(s: AsyncSession, customer_id: str) -> list[str]:
    return list(await s.scalars(select(CustomerTag.tag).where(
        CustomerTag.customer_id == customer_id).order_by(CustomerTag.tag)))


async def merges(s: AsyncSession, customer_id: str) -> list[dict[str, Any]]:
    """The audit trail of merges this customer took part in, newest first."""
    rows = list(await s.scalars(select(CustomerMerge).where(or_(
        CustomerMerge.survivor_id == customer_id, CustomerMerge.merged_id == customer_id))
        .order_by(CustomerMerge.merged_at.desc())))
    ids = {r.survivor_id for r in rows} | {r.merged_id for r in rows}
    names = dict((await s.execute(select(Customer.id, Customer.display_name)
                                  .where(Customer.id.in_(ids)))).all()) if ids else {}
    return [{"id": m.id, "survivor": {"id": m.survivor_id, "name": names.get(m.survivor_id)},
             "merged": {"id": m.merged_id, "name": names.get(m.merged_id)},
             "by": m.merged_by, "at": m.merged_at.isoformat(), "moved": dict(m.moved),
             "undone_by": m.undone_by,
             "undone_at": m.undone_at.isoformat() if m.undone_at else None} for m in rows]


async def search(s: AsyncSession, q: str, region: str) -> list[dict[str, Any]]:
    """Customers (not merged away) by name, phone or email: a phone is matched whole
    once it reads as one, else by the digits given; the rest by substring."""
    text = q.strip()
    if len(text) < 2:
        raise BadRequest("q: give at least 2 characters of a name, phone or email")
    if _PHONEISH.match(text):
        e164 = normalize_phone(text, region)
        digits = re.sub(r"[^0-9]", "", text)
        value: ColumnElement[bool] = Identity.value == e164 if e164 else \
            Identity.value.contains(digits, autoescape=True)
        match: ColumnElement[bool] = Customer.id.in_(select(Identity.customer_id).where(
            Identity.kind == "phone", value))
    else:
        match = or_(Customer.display_name.ilike(f"%{_escape(text)}%", escape="\\"),
                    Customer.id.in_(select(Identity.customer_id).where(
                        Identity.value.contains(text.lower(), autoescape=True))))
    rows = list(await s.scalars(select(Customer).where(match, Customer.merged_into.is_(None))
                                .order_by(Customer.created_at.desc()).limit(_SEARCH_LIMIT)))
    if not rows:
        return []
    idents: dict[str, list[dict[str, str]]] = {}
    for i in await s.scalars(select(Identity).where(
            Identity.customer_id.in_([r.id for r in rows])).order_by(Identity.created_at)):
        idents.setdefault(i.customer_id, []).append({"kind": i.kind, "value": i.value})
    return [{"id": r.id, "name": r.display_name, "tier": r.tier,
             "identities": idents.get(r.id, [])} for r in rows]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _ref(c: Customer | None) -> dict[str, Any] | None:
    return None if c is None else {"id": c.id, "name": c.display_name}
