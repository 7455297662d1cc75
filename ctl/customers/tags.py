"""A customer's tags ("vip", "refund-risk"...): agents add and remove them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from ctl.errors import BadRequest, Conflict, NotFound
from ctl.store.models import Base, Customer

_TAGS = Base.metadata.tables["customer_tags"]
MAX_TAGS = 50
MAX_LENGTH = 64


def clean(tags: object) -> list[str]:
    """Tags as given, trimmed and deduplicated; refused with the reason if not usable."""
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BadRequest('tags: a list of strings, e.g. ["vip"]')
    out: list[str] = []
    for raw in tags:
        tag = " ".join(raw.split())
        if not tag or len(tag) > MAX_LENGTH or not tag.isprintable():
            raise BadRequest(f"tag {raw!r}: 1 to {MAX_LENGTH} printable characters")
        if tag not in out:
            out.append(tag)
    return out


def editable(s: Session, customer_id: str) -> None:
    c = s.get(Customer, customer_id)
    if c is None:
        raise NotFound(f"no customer {customer_id}")
    if c.merged_into is not None:
        raise Conflict(f"customer {customer_id} was merged into {c.merged_into}: "
                       "edit that one")


def change(s: Session, customer_id: str, by: str, *, add: Iterable[str] = (),
           remove: Iterable[str] = (), replace: bool = False) -> list[str]:
    """Add and remove (or, with `replace`, set exactly `add`); the tags after."""
    editable(s, customer_id)
    have = set(s.scalars(select(_TAGS.c.tag).where(_TAGS.c.customer_id == customer_id)))
    wanted = list(add)
    gone = (have - set(wanted)) if replace else (set(remove) & have)
    if gone:
        s.execute(delete(_TAGS).where(_TAGS.c.customer_id == customer_id,
                                      _TAGS.c.tag.in_(gone)))
    new = [t for t in wanted if t not in have]
    if len(have - gone) + len(new) > MAX_TAGS:
        raise BadRequest(f"tags: at most {MAX_TAGS} per customer")
    if new:
        s.execute(insert(_TAGS), [{"customer_id": customer_id, "tag": t, "created_by": by}
                                  for t in new])
    return sorted((have - gone) | set(new))
