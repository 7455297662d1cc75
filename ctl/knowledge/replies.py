"""Quick replies: an agent's personal ones and the team's, which supervisors and admins
edit. An agent sees the team's and their own; nobody sees another agent's personal
replies. A shortcut is unique per owner (or the team) and language; an agent's personal
`/refund` is listed before the team's."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ctl.agents.auth import Principal
from ctl.errors import BadRequest, Conflict, NotFound
from ctl.knowledge import fields, search, variables
from ctl.store.db import Database
from ctl.store.models import QuickReply, utcnow

SCOPES = ("personal", "team")
EDITABLE = frozenset({"title", "shortcut", "language", "body"})
_SHORTCUT = re.compile(r"/[^\s/]{1,31}")


def view(r: QuickReply) -> dict[str, Any]:
    return {"id": r.id, "scope": "team" if r.owner_id is None else "personal",
            "owner_id": r.owner_id, "title": r.title, "shortcut": r.shortcut,
            "language": r.language, "body": r.body, "updated_by": r.updated_by,
            "updated_at": r.updated_at.isoformat()}


def _checked(body: dict[str, Any], current: QuickReply | None = None) -> dict[str, Any]:
    fields.known(body, EDITABLE | {"scope"})
    merged = {k: getattr(current, k) for k in EDITABLE} if current else {}
    merged.update({k: v for k, v in body.items() if k in EDITABLE})
    shortcut = fields.text(merged, "shortcut", 32)
    shortcut = shortcut if shortcut.startswith("/") else f"/{shortcut}"
    if not _SHORTCUT.fullmatch(shortcut):
        raise BadRequest(f"shortcut {shortcut!r}: a slash and 1-31 characters without "
                         "spaces, like /refund")
    out = {"title": fields.text(merged, "title", 200), "shortcut": shortcut,
           "language": fields.language(merged), "body": fields.text(merged, "body", 10_000)}
    variables.check(out["body"])
    return out


def _may_edit(who: Principal, r: QuickReply) -> None:
    if r.owner_id is None:
        who.require("supervisor")
    elif r.owner_id != who.agent_id:
        raise NotFound(f"no quick reply {r.id}")  # another's personal reply: not even seen


def _unique(s: Session, owner: str | None, values: dict[str, Any], own_id: str | None) -> None:
    clash = s.scalar(select(QuickReply.id).where(
        QuickReply.owner_id.is_(None) if owner is None else QuickReply.owner_id == owner,
        QuickReply.shortcut == values["shortcut"], QuickReply.language == values["language"],
        QuickReply.id != (own_id or "")))
    if clash:
        whose = "the team" if owner is None else "you"
        raise Conflict(f"{whose} already have {values['shortcut']} in {values['language']}")


class QuickReplies:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def visible(self, who: Principal) -> list[QuickReply]:
        """The agent's own, then the team's, each by shortcut."""
        async with self._db.session(readonly=True) as s:
            rows = await s.scalars(select(QuickReply).where(or_(
                QuickReply.owner_id.is_(None), QuickReply.owner_id == who.agent_id)))
            return sorted(rows, key=lambda r: (r.owner_id is None, r.shortcut, r.language))

    async def search(self, who: Principal, query: str = "", language: str | None = None,
                     limit: int = 200) -> list[dict[str, Any]]:
        return await self.find(who, search.query_terms(query), language, limit)

    async def find(self, who: Principal, terms: list[str], language: str | None = None,
                   limit: int = 200) -> list[dict[str, Any]]:
        """search() for terms already made (search.terms); all of them without terms."""
        rows = [r for r in await self.visible(who) if not language or r.language == language]
        if not terms:
            return [view(r) for r in rows[:limit]]
        by_id = {r.id: r for r in rows}
        ranked = search.rank_texts(terms, {r.id: (f"{r.title} {r.shortcut}", r.body)
                                           for r in rows})
        return [{**view(by_id[i]), "score": score} for score, i in ranked[:limit]]

    async def get(self, who: Principal, reply_id: str) -> QuickReply:
        async with self._db.session(readonly=True) as s:
            r = await s.get(QuickReply, reply_id)
        if r is None or (r.owner_id is not None and r.owner_id != who.agent_id):
            raise NotFound(f"no quick reply {reply_id}")
        return r

    async def create(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        scope = fields.choice(body, "scope", SCOPES, "personal")
        if scope == "team":
            who.require("supervisor")
        values = _checked(body)
        owner = None if scope == "team" else who.agent_id

        def work(s: Session) -> QuickReply:
            _unique(s, owner, values, None)
            now = utcnow()
            r = QuickReply(**values, owner_id=owner, created_at=now, updated_at=now,
                           updated_by=who.username)
            s.add(r)
            return r

        return view(await self._db.write(work))

    async def update(self, who: Principal, reply_id: str, body: dict[str, Any]
                     ) -> dict[str, Any]:
        if "scope" in body:
            raise BadRequest("scope cannot change: create the reply in the other scope")

        def work(s: Session) -> QuickReply:
            r = s.get(QuickReply, reply_id)
            if r is None:
                raise NotFound(f"no quick reply {reply_id}")
            _may_edit(who, r)
            values = _checked(body, r)
            _unique(s, r.owner_id, values, r.id)
            for k, v in values.items():
                setattr(r, k, v)
            r.updated_at, r.updated_by = utcnow(), who.username
            return r

        return view(await self._db.write(work))

    async def delete(self, who: Principal, reply_id: str) -> None:
        def work(s: Session) -> None:
            r = s.get(QuickReply, reply_id)
            if r is None:
                raise NotFound(f"no quick reply {reply_id}")
            _may_edit(who, r)
            s.delete(r)

        await self._db.write(work)
