"""Merge and unmerge as a state machine (hypothesis), on SQLite and PostgreSQL: random
customers with identities, contacts, messages, tickets and tags; random merges and
unmerges (refused ones included). After every step each row's owner is what the model
says, and undoing every merge restores every row's owner exactly."""

from __future__ import annotations

import itertools
import random
from functools import partial
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ctl.customers import merge
from ctl.errors import BadRequest, Conflict
from ctl.store.db import Database
from ctl.store.models import Base, new_id, utcnow
from tests.integration.tickets_db import ticket_db

__all__ = ["ticket_db"]

T = Base.metadata.tables
_NUMBERS = itertools.count(random.randrange(10**6, 10**8, 1000))
TAGS = ("vip", "b2b", "late", "new")

customer = st.fixed_dictionaries({
    "identities": st.integers(0, 3), "contacts": st.lists(st.integers(0, 3), max_size=3),
    "loose": st.integers(0, 2), "tickets": st.integers(0, 2),
    "tags": st.sets(st.sampled_from(TAGS))})
op = st.one_of(st.tuples(st.just("merge"), st.integers(0, 4), st.integers(0, 4)),
               st.tuples(st.just("undo"), st.integers(0, 9)))


def build(s: Session, specs: list[dict[str, Any]]) -> tuple[list[str], dict[tuple[str, str], str]]:
    """The customers and their rows; returns ids and {(kind, row id): owner}."""
    now = utcnow()
    ids, owners = [], {}
    for spec in specs:
        c = new_id()
        ids.append(c)
        s.execute(insert(T["customers"]), {"id": c, "tier": "standard", "created_at": now})
        for _ in range(spec["identities"]):
            i = new_id()
            s.execute(insert(T["identities"]), {"id": i, "customer_id": c, "kind": "account",
                                                "value": i, "verified": False,
                                                "created_at": now})
            owners["identity", i] = c
        for n_messages in spec["contacts"]:
            k = new_id()
            s.execute(insert(T["contacts"]), {
                "id": k, "channel": "chat", "customer_id": c, "state": "closed", "priority": 0,
                "attributes": {}, "criteria": [], "created_at": now, "updated_at": now,
                "version": 1})
            owners["contact", k] = c
            for seq in range(1, n_messages + 1):
                owners["message", _message(s, c, k, seq)] = c
        for _ in range(spec["loose"]):
            owners["message", _message(s, c, None, 0)] = c
        for _ in range(spec["tickets"]):
            t = new_id()
            s.execute(insert(T["tickets"]), {
                "id": t, "number": next(_NUMBERS), "subject": "s", "description": "",
                "status": "new", "priority": "normal", "customer_id": c, "source": "api",
                "tags": [], "fields": {}, "attachments": [], "notify": True,
                "created_at": now, "updated_at": now, "sla_state": "none", "version": 1})
            owners["ticket", t] = c
        for tag in spec["tags"]:
            s.execute(insert(T["customer_tags"]), {"customer_id": c, "tag": tag,
                                                   "created_at": now})
    return ids, owners


def _message(s: Session, customer_id: str, contact_id: str | None, seq: int) -> str:
    m = new_id()
    s.execute(insert(T["messages"]), {
        "id": m, "contact_id": contact_id, "customer_id": customer_id, "channel": "chat",
        "direction": "in", "seq": seq, "address": "a", "text": "t", "status": "received",
        "attachments": [], "meta": {}, "created_at": utcnow()})
    return m


def read(s: Session, ids: list[str], rows: list[tuple[str, str]]
         ) -> tuple[dict[tuple[str, str], str], set[tuple[str, str]], dict[str, str | None]]:
    """Owners of the rows, the tags (owner, tag), and who each customer is merged into."""
    owners: dict[tuple[str, str], str] = {}
    for kind, table in merge.OWNED.items():
        wanted = [r for k, r in rows if k == kind]
        for row_id, owner in s.execute(select(table.c.id, table.c.customer_id)
                                       .where(table.c.id.in_(wanted))):
            owners[kind, row_id] = owner
    tags = {(o, t) for o, t in s.execute(
        select(T["customer_tags"].c.customer_id, T["customer_tags"].c.tag)
        .where(T["customer_tags"].c.customer_id.in_(ids)))}
    merged = {c: m for c, m in s.execute(select(T["customers"].c.id, T["customers"].c.merged_into)
                                         .where(T["customers"].c.id.in_(ids)))}
    return owners, tags, merged


class Model:
    """The specification: what a merge moves and an unmerge moves back."""

    def __init__(self, owners: dict[tuple[str, str], str], tags: set[tuple[str, str]],
                 ids: list[str]) -> None:
        self.owners, self.tags = dict(owners), set(tags)
        self.merged: dict[str, str | None] = dict.fromkeys(ids)
        self.moves: dict[str, tuple[str, str, set[Any], set[str]]] = {}
        self.undone: set[str] = set()

    def merge(self, merge_id: str, keep: str, gone: str) -> None:
        rows = {r for r, o in self.owners.items() if o == gone}
        theirs = {t for o, t in self.tags if o == gone} - {t for o, t in self.tags if o == keep}
        for r in rows:
            self.owners[r] = keep
        self.tags = {(keep if (o == gone and t in theirs) else o, t) for o, t in self.tags}
        self.merged[gone] = keep
        self.moves[merge_id] = (keep, gone, rows, theirs)

    def undo(self, merge_id: str) -> None:
        keep, gone, rows, theirs = self.moves[merge_id]
        for r in rows:
            if self.owners[r] == keep:
                self.owners[r] = gone
        self.tags = {(gone if (o == keep and t in theirs) else o, t) for o, t in self.tags}
        self.merged[gone] = None
        self.undone.add(merge_id)

    def may_merge(self, keep: str, gone: str) -> bool:
        return keep != gone and self.merged[keep] is None and self.merged[gone] is None

    def may_undo(self, merge_id: str) -> bool:
        return merge_id not in self.undone and self.merged[self.moves[merge_id][0]] is None


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(specs=st.lists(customer, min_size=2, max_size=5), ops=st.lists(op, max_size=12))
async def test_unmerge_restores_exactly_what_merge_moved(
        ticket_db: Database, specs: list[dict[str, Any]], ops: list[tuple[Any, ...]]) -> None:
    db = ticket_db
    ids, owners = await db.write(partial(build, specs=specs))
    rows = list(owners)
    start = await db.write(partial(read, ids=ids, rows=rows))
    model = Model(start[0], start[1], ids)
    done: list[str] = []
    for o in ops:
        if o[0] == "merge":
            keep, gone = ids[o[1] % len(ids)], ids[o[2] % len(ids)]
            if model.may_merge(keep, gone):
                got = await db.write(partial(merge.merge, survivor_id=keep, merged_id=gone,
                                             by="sup"))
                model.merge(got["id"], keep, gone)
                done.append(got["id"])
            else:
                try:
                    await db.write(partial(merge.merge, survivor_id=keep, merged_id=gone,
                                           by="sup"))
                    raise AssertionError(f"merging {gone} into {keep} was not refused")
                except (BadRequest, Conflict):
                    pass
        elif done:
            merge_id = done[o[1] % len(done)]
            if model.may_undo(merge_id):
                await db.write(partial(merge.unmerge, merge_id=merge_id, by="sup"))
                model.undo(merge_id)
            else:
                try:
                    await db.write(partial(merge.unmerge, merge_id=merge_id, by="sup"))
                    raise AssertionError(f"undoing {merge_id} was not refused")
                except Conflict:
                    pass
        assert await db.write(partial(read, ids=ids, rows=rows)) == \
            (model.owners, model.tags, model.merged)
    for merge_id in reversed(done):
        if merge_id not in model.undone:
            await db.write(partial(merge.unmerge, merge_id=merge_id, by="sup"))
            model.undo(merge_id)
    assert await db.write(partial(read, ids=ids, rows=rows)) == start
