"""The customer 360 service: what the desk shows of a customer, and what agents and
supervisors change there (tags, profile, merges). The SQL lives in profile.py,
timeline.py, tags.py and merge.py; this class holds the database and the settings."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctl.agents.auth import Principal
from ctl.customers import merge, profile, tags, timeline
from ctl.customers.crm import Crm, CrmSettings
from ctl.errors import BadRequest
from ctl.store.db import Database
from ctl.store.models import Customer, Identity


class CustomerRecords:
    def __init__(self, db: Database, crm: CrmSettings, recordings: Path,
                 region: str = "US") -> None:
        self._db = db
        self.crm = Crm(crm)
        self.recordings = recordings
        self._region = region

    async def get(self, customer_id: str) -> dict[str, Any]:
        async with self._db.session(readonly=True) as s:
            found = await profile.profile(s, customer_id)
        found["crm"] = {"configured": self.crm.configured}
        return found

    async def search(self, q: str) -> list[dict[str, Any]]:
        async with self._db.session(readonly=True) as s:
            return await profile.search(s, q, self._region)

    async def timeline(self, customer_id: str, cursor: str | None, limit: int
                       ) -> dict[str, Any]:
        async with self._db.session(readonly=True) as s:
            await profile.load(s, customer_id)
            return await timeline.page(s, customer_id, cursor, limit)

    async def recording(self, contact_id: str, name: str) -> Path:
        async with self._db.session(readonly=True) as s:
            return await timeline.recording(s, self.recordings, contact_id, name)

    async def update(self, who: Principal, customer_id: str, changes: dict[str, Any]
                     ) -> dict[str, Any]:
        """Name and language (what an agent learns talking to the customer)."""
        unknown = set(changes) - {"name", "language"}
        if unknown:
            raise BadRequest(f"cannot change {', '.join(sorted(unknown))} here",
                             hint="name and language can be changed")
        values: dict[str, Any] = {}
        if "name" in changes:
            name = changes["name"]
            if name is not None and (not isinstance(name, str) or len(name.strip()) > 200):
                raise BadRequest("name: up to 200 characters, or null")
            values["display_name"] = (name or "").strip() or None
        if "language" in changes:
            lang = changes["language"]
            if lang is not None and (not isinstance(lang, str) or not 2 <= len(lang) <= 16):
                raise BadRequest("language: a language tag such as en or zh-CN, or null")
            values["language"] = lang

        def work(s: Session) -> None:
            tags.editable(s, customer_id)
            c = s.get(Customer, customer_id)
            for key, value in values.items():
                setattr(c, key, value)

        await self._db.write(work)
        return await self.get(customer_id)

    async def tag(self, who: Principal, customer_id: str, *, add: Any = None,
                  remove: Any = None, replace: bool = False) -> list[str]:
        """`add`/`remove`: lists of tags as the client sent them (checked here)."""
        return await self._db.write(partial(
            tags.change, customer_id=customer_id, by=who.username,
            add=tags.clean(add or []), remove=tags.clean(remove or []), replace=replace))

    async def merge(self, who: Principal, survivor_id: str, merged_id: str) -> dict[str, Any]:
        who.require("supervisor")
        return await self._db.write(partial(merge.merge, survivor_id=survivor_id,
                                            merged_id=merged_id, by=who.username))

    async def unmerge(self, who: Principal, merge_id: str) -> dict[str, Any]:
        who.require("supervisor")
        return await self._db.write(partial(merge.unmerge, merge_id=merge_id,
                                            by=who.username))

    async def crm_lookup(self, customer_id: str) -> dict[str, Any]:
        async with self._db.session(readonly=True) as s:
            c = await profile.load(s, customer_id)
            rows = await s.execute(select(Identity.kind, Identity.value)
                                   .where(Identity.customer_id == customer_id)
                                   .order_by(Identity.created_at.desc()))
        values = {"id": c.id, "name": c.display_name or ""}
        values.update({kind: value for kind, value in rows})  # oldest last: oldest wins
        return await self.crm.lookup(values)

    async def close(self) -> None:
        await self.crm.close()
