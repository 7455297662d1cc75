"""Customers: every identity (phone, email, social id...) resolves to one customer id."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ctl.customers.identity import normalize
from ctl.store.db import Database
from ctl.store.models import IDENTITY_KINDS, Customer, Identity, new_id

_ATTEMPTS = 3


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

    async def _find(self, kind: str, value: str) -> str | None:
        stmt = select(Identity.customer_id).where(Identity.kind == kind, Identity.value == value)
        async with self._db.session(readonly=True) as s:
            return (await s.scalars(stmt)).first()

    async def _create(self, kind: str, value: str, display_name: str | None) -> str:
        customer = Customer(id=new_id(), display_name=display_name)
        async with self._db.session() as s, s.begin():
            s.add(customer)
            await s.flush()
            s.add(Identity(customer_id=customer.id, kind=kind, value=value))
        return customer.id
