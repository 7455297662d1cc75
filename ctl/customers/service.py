"""Customers: every identity (phone, email, social id...) resolves to one customer id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ctl.customers.identity import normalize
from ctl.errors import BadRequest, Conflict
from ctl.store.db import Database
from ctl.store.models import IDENTITY_KINDS, Base, Contact, Customer, Identity, new_id

_ATTEMPTS = 3
_CUSTOMERS, _IDENTITIES = Base.metadata.tables["customers"], Base.metadata.tables["identities"]
# Built once (bound parameters): identify_in runs on every call's path. Core columns,
# not the ORM's: an ORM select costs the session's ORM compile and result layers.
FIND_CUSTOMER = select(_IDENTITIES.c.customer_id).where(
    _IDENTITIES.c.kind == bindparam("kind"), _IDENTITIES.c.value == bindparam("value"))
_NEW_CUSTOMER, _NEW_IDENTITY = insert(_CUSTOMERS), insert(_IDENTITIES)


class CustomerService:
    def __init__(self, db: Database, region: str = "US") -> None:
        self._db = db
        self._region = region  # reads national phone numbers passed to identify()

    async def identify(self, kind: str, value: str, display_name: str | None = None) -> str:
        """The id of the customer with this identity, created on first sight."""
        if kind not in IDENTITY_KINDS:
            raise ValueError(f"unknown identity kind {kind!r}")
        norm = normalize(kind, value, self._region)
        if norm is None:
            raise ValueError(f"not a usable {kind}: {value!r}")
        for _ in range(_ATTEMPTS):
            found = await self._find(kind, norm)
            if found is not None:
                return found
            try:
                return await self._create(kind, norm, display_name)
            except IntegrityError:
                continue  # a concurrent identify() created it first: read theirs
        raise RuntimeError(f"identity {kind} kept conflicting")  # pragma: no cover

    async def describe(self, kind: str, value: str) -> dict[str, Any] | None:
        """Who has this identity (id, name, tier), or None: for IVR flows' lookups."""
        norm = normalize(kind, value, self._region) if kind in IDENTITY_KINDS else None
        if norm is None:
            return None
        async with self._db.session(readonly=True) as s:
            row = (await s.execute(select(Customer).join(Identity).where(
                Identity.kind == kind, Identity.value == norm))).scalars().first()
            if row is None:
                return None
            return {"id": row.id, "name": row.display_name, "tier": row.tier}

    async def of_contact(self, contact_id: str) -> dict[str, Any] | None:
        """Who a contact is with (id, name, tier, first identity), or None: for the desk's
        offer toast, before the agent holds the contact."""
        async with self._db.session(readonly=True) as s:
            row = (await s.execute(select(Customer).join(
                Contact, Contact.customer_id == Customer.id).where(
                Contact.id == contact_id))).scalars().first()
            if row is None:
                return None
            first = (await s.execute(select(Identity.kind, Identity.value).where(
                Identity.customer_id == row.id).order_by(Identity.created_at).limit(1))).first()
        return {"id": row.id, "name": row.display_name, "tier": row.tier,
                "identity": {"kind": first.kind, "value": first.value} if first else None}

    async def link(self, customer_id: str, kind: str, value: str) -> dict[str, Any]:
        """Give `customer_id` the verified identity `value` (an agent checked it: a
        WeChat customer's phone number...), so that channel finds this customer too.
        Conflict when another customer has it: merging two customers is a supervisor's
        decision (POST /api/v1/customers/{id}/merge), never a side effect."""
        if kind not in IDENTITY_KINDS:
            raise BadRequest(f"unknown identity kind {kind!r}",
                             hint="one of " + ", ".join(sorted(IDENTITY_KINDS)))
        norm = normalize(kind, value, self._region)
        if norm is None:
            raise BadRequest(f"{kind}: {value!r} is not usable as a {kind}")

        def work(s: Session) -> bool:
            owner = s.scalars(FIND_CUSTOMER, {"kind": kind, "value": norm}).first()
            if owner is None:
                s.execute(insert(_IDENTITIES), {"customer_id": customer_id, "kind": kind,
                                                "value": norm, "verified": True})
                return True
            if owner != customer_id:
                raise Conflict(f"{kind} {norm} belongs to another customer ({owner}); a "
                               "supervisor may merge them: POST /api/v1/customers/"
                               f"{customer_id}/merge {{\"from\": \"{owner}\"}}")
            s.execute(update(Identity).where(Identity.kind == kind, Identity.value == norm)
                      .values(verified=True))
            return False

        try:
            added = await self._db.write(work)
        except IntegrityError:  # PostgreSQL: someone created it meanwhile; say whose
            added = await self._db.write(work)
        return {"customer_id": customer_id, "kind": kind, "value": norm, "added": added}

    async def _find(self, kind: str, value: str) -> str | None:
        stmt = select(Identity.customer_id).where(Identity.kind == kind, Identity.value == value)
        async with self._db.session(readonly=True) as s:
            return (await s.scalars(stmt)).first()

    async def _create(self, kind: str, value: str, display_name: str | None) -> str:
        return await self._db.write(lambda s: create_in(s, kind, value, display_name))


def identify_in(s: Session, kind: str, value: str, display_name: str | None = None,
                also: Sequence[tuple[str, str]] = ()) -> str:
    """identify() inside the caller's transaction; `value` is already normalised.

    `also`: other identities (normalised) the customer gave with it, e.g. the phone of a
    chat form that asked for an email too. The first of all of them that is known names
    the customer (so a visitor who called before joins that caller's record), and those
    nobody has yet are linked to it; one that another customer has stays theirs (two
    records of one person are merged by a supervisor, never on a form's say-so).

    On SQLite the caller's write transaction holds the lock, so nobody can create the
    same identity meanwhile. On PostgreSQL a concurrent creator makes the caller's flush
    or commit raise IntegrityError: the caller retries its whole transaction.
    """
    if not also:  # the hot path of every call and message: one lookup
        found = s.connection().execute(FIND_CUSTOMER, {"kind": kind, "value": value}).scalar()
        return found if found is not None else create_in(s, kind, value, display_name)
    given = [(kind, value), *also]
    owners = {k_v: s.scalars(FIND_CUSTOMER, {"kind": k_v[0], "value": k_v[1]}).first()
              for k_v in given}
    customer = next((o for o in owners.values() if o is not None), None)
    if customer is None:
        customer = create_in(s, kind, value, display_name)
        owners[kind, value] = customer
    for (k, v), owner in owners.items():
        if owner is None:
            s.execute(insert(_IDENTITIES), {"customer_id": customer, "kind": k, "value": v})
    return customer


def create_in(s: Session, kind: str, value: str, display_name: str | None) -> str:
    # Two plain INSERTs in this order (no unit of work: nothing would tell it that the
    # identity depends on the customer); the tables' column defaults fill the rest.
    customer_id, conn = new_id(), s.connection()
    conn.execute(_NEW_CUSTOMER, {"id": customer_id, "display_name": display_name})
    conn.execute(_NEW_IDENTITY, {"customer_id": customer_id, "kind": kind, "value": value})
    return customer_id
