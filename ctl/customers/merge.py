"""Manual merge and unmerge of customers (supervisors), with their audit trail.

A merge moves every identity, contact, message, ticket and tag of one customer to the
survivor and records each moved row (`customer_merge_rows`): an unmerge moves exactly
those rows back, so rows that arrived since stay where they are. The merged customer is
kept, marked `merged_into`, for the audit trail. Each is one write transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, Table, delete, insert, literal, select, update
from sqlalchemy.orm import Session

from ctl.errors import BadRequest, Conflict, NotFound
from ctl.store.models import Base, Customer, CustomerMerge, new_id, utcnow

_ROWS = Base.metadata.tables["customer_merge_rows"]
_TAGS = Base.metadata.tables["customer_tags"]
# What moves, by the kind recorded for it. Tags are keyed by name, not by id.
OWNED: dict[str, Table] = {kind: Base.metadata.tables[name] for kind, name in (
    ("identity", "identities"), ("contact", "contacts"), ("message", "messages"),
    ("ticket", "tickets"))}


def _lock(s: Session, customer_id: str) -> Customer:
    found = s.scalars(select(Customer).where(Customer.id == customer_id)
                      .with_for_update()).first()
    if found is None:
        raise NotFound(f"no customer {customer_id}")
    return found


def merge(s: Session, survivor_id: str, merged_id: str, by: str) -> dict[str, Any]:
    """Move everything of `merged_id` to `survivor_id`; the merge's id and counts."""
    if survivor_id == merged_id:
        raise BadRequest("a customer cannot be merged into itself")
    # Locked in id order: two merges of the same pair in opposite directions never
    # wait for each other's second lock.
    first, second = sorted((survivor_id, merged_id))
    locked = {c.id: c for c in (_lock(s, first), _lock(s, second))}
    survivor, merged = locked[survivor_id], locked[merged_id]
    for c in (survivor, merged):
        if c.merged_into is not None:
            raise Conflict(f"customer {c.id} was merged into {c.merged_into}: "
                           "merge into that one, or unmerge it first")
    now = utcnow()
    merge_id = new_id()
    s.execute(insert(CustomerMerge).values(id=merge_id, survivor_id=survivor_id,
                                           merged_id=merged_id, merged_by=by, merged_at=now,
                                           moved={}))
    moved: dict[str, int] = {}
    for kind, table in OWNED.items():
        s.execute(insert(_ROWS).from_select(
            ["merge_id", "kind", "row_id"],
            select(literal(merge_id), literal(kind), table.c.id)
            .where(table.c.customer_id == merged_id)))
        moved[kind] = _count(s.execute(update(table).where(table.c.customer_id == merged_id)
                                       .values(customer_id=survivor_id)))
    # A tag both have stays on the merged customer too (nothing is lost, nothing to undo).
    theirs = select(_TAGS.c.tag).where(_TAGS.c.customer_id == merged_id,
                                       _TAGS.c.tag.not_in(select(_TAGS.c.tag).where(
                                           _TAGS.c.customer_id == survivor_id)))
    tags = list(s.scalars(theirs))
    if tags:
        s.execute(insert(_ROWS), [{"merge_id": merge_id, "kind": "tag", "row_id": t}
                                  for t in tags])
        s.execute(update(_TAGS).where(_TAGS.c.customer_id == merged_id,
                                      _TAGS.c.tag.in_(tags)).values(customer_id=survivor_id))
    moved["tag"] = len(tags)
    s.execute(update(CustomerMerge).where(CustomerMerge.id == merge_id).values(moved=moved))
    merged.merged_into = survivor_id
    if survivor.display_name is None and merged.display_name is not None:
        survivor.display_name = merged.display_name
    return {"id": merge_id, "survivor": survivor_id, "merged": merged_id, "moved": moved}


def unmerge(s: Session, merge_id: str, by: str) -> dict[str, Any]:
    """Move back what the merge moved (what still belongs to the survivor)."""
    m = s.scalars(select(CustomerMerge).where(CustomerMerge.id == merge_id)
                  .with_for_update()).first()
    if m is None:
        raise NotFound(f"no merge {merge_id}")
    if m.undone_at is not None:
        raise Conflict(f"merge {merge_id} was undone at {m.undone_at.isoformat()} "
                       f"by {m.undone_by}")
    first, second = sorted((m.survivor_id, m.merged_id))
    locked = {c.id: c for c in (_lock(s, first), _lock(s, second))}
    survivor, merged = locked[m.survivor_id], locked[m.merged_id]
    if survivor.merged_into is not None:
        raise Conflict(f"customer {survivor.id} was merged into {survivor.merged_into} "
                       "since: undo that merge first")
    back: dict[str, int] = {}
    for kind, table in [*OWNED.items(), ("tag", _TAGS)]:
        key = table.c.tag if kind == "tag" else table.c.id
        rows = select(_ROWS.c.row_id).where(_ROWS.c.merge_id == merge_id, _ROWS.c.kind == kind)
        back[kind] = _count(s.execute(update(table).where(
            table.c.customer_id == survivor.id, key.in_(rows)).values(customer_id=merged.id)))
    s.execute(delete(_ROWS).where(_ROWS.c.merge_id == merge_id))
    merged.merged_into = None
    m.undone_at, m.undone_by = utcnow(), by
    return {"id": merge_id, "survivor": survivor.id, "merged": merged.id, "moved_back": back}


def _count(result: object) -> int:
    assert isinstance(result, CursorResult)  # an UPDATE's result: it counts its rows
    return int(result.rowcount)
