"""Knowledge-base articles: admins and supervisors write them, agents read the published
ones. Every save re-indexes the article in its own transaction (search.py), so a search
never sees an article's new text with its old terms; the text a save replaces is kept as
a version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ctl.errors import Conflict, NotFound
from ctl.knowledge import fields, search
from ctl.store.db import Database
from ctl.store.models import Article, ArticleTerm, ArticleVersion, utcnow

FORMATS = ("markdown", "text")
STATUSES = ("draft", "published")
EDITABLE = frozenset({"title", "body", "format", "language", "tags", "status"})
_MAX_BODY = 100_000


def view(a: Article, score: float | None = None) -> dict[str, Any]:
    out = {"id": a.id, "title": a.title, "body": a.body, "format": a.format,
           "language": a.language, "tags": list(a.tags or []), "status": a.status,
           "version": a.version, "updated_by": a.updated_by,
           "updated_at": a.updated_at.isoformat(), "created_at": a.created_at.isoformat()}
    if score is not None:
        out["score"] = score
    return out


def _checked(body: dict[str, Any], current: Article | None = None) -> dict[str, Any]:
    fields.known(body, EDITABLE | {"version"})
    merged = {k: getattr(current, k) for k in EDITABLE} if current else {}
    merged.update({k: v for k, v in body.items() if k in EDITABLE})
    return {"title": fields.text(merged, "title", 300),
            "body": fields.text(merged, "body", _MAX_BODY, required=False),
            "format": fields.choice(merged, "format", FORMATS, "markdown"),
            "language": fields.language(merged),
            "tags": fields.tags(merged),
            "status": fields.choice(merged, "status", STATUSES, "draft")}


def _index(s: Session, a: Article) -> None:
    counts = search.document_terms(a.title, a.body, a.tags or ())
    s.execute(delete(ArticleTerm).where(ArticleTerm.article_id == a.id))
    if counts:
        s.execute(insert(ArticleTerm), [{"article_id": a.id, "term": t, "tf": n}
                                        for t, n in counts.items()])
    a.length = sum(counts.values())


class Articles:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, body: dict[str, Any], actor: str) -> dict[str, Any]:
        values = _checked(body)

        def work(s: Session) -> Article:
            now = utcnow()
            a = Article(**values, created_at=now, updated_at=now, updated_by=actor, version=1)
            s.add(a)
            s.flush()
            _index(s, a)
            return a

        return view(await self._db.write(work))

    async def update(self, article_id: str, body: dict[str, Any], actor: str
                     ) -> dict[str, Any]:
        """Change fields; `version` in the body (the one read) makes a stale save a 409."""
        expected = body.get("version")

        def work(s: Session) -> Article:
            a = s.get(Article, article_id, with_for_update=True)
            if a is None:
                raise NotFound(f"no article {article_id}")
            if expected is not None and expected != a.version:
                raise Conflict(f"article {article_id} is at version {a.version}, not "
                               f"{expected}: someone saved it since", hint="reload it")
            values = _checked(body, a)
            s.add(ArticleVersion(article_id=a.id, version=a.version, title=a.title,
                                 body=a.body, tags=list(a.tags or []), status=a.status,
                                 updated_by=a.updated_by, updated_at=a.updated_at))
            for k, v in values.items():
                setattr(a, k, v)
            a.version += 1
            a.updated_at, a.updated_by = utcnow(), actor
            _index(s, a)
            return a

        return view(await self._db.write(work))

    async def delete(self, article_id: str) -> None:
        def work(s: Session) -> None:
            a = s.get(Article, article_id)
            if a is None:
                raise NotFound(f"no article {article_id}")
            # Terms and versions go with it (ON DELETE CASCADE; SQLite enforces it too).
            s.execute(delete(Article).where(Article.id == article_id))

        await self._db.write(work)

    async def get(self, article_id: str, *, drafts: bool) -> dict[str, Any]:
        async with self._db.session(readonly=True) as s:
            a = await s.get(Article, article_id)
        if a is None or (a.status != "published" and not drafts):
            raise NotFound(f"no article {article_id}")
        return view(a)

    async def versions(self, article_id: str) -> list[dict[str, Any]]:
        async with self._db.session(readonly=True) as s:
            rows = await s.scalars(select(ArticleVersion)
                                   .where(ArticleVersion.article_id == article_id)
                                   .order_by(ArticleVersion.version.desc()))
            return [{"version": v.version, "title": v.title, "body": v.body,
                     "tags": list(v.tags or []), "status": v.status,
                     "updated_by": v.updated_by, "updated_at": v.updated_at.isoformat()}
                    for v in rows]

    async def search(self, query: str, *, language: str | None = None, drafts: bool = False,
                     tag: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """Best matches first (BM25 over the index); without query terms, the most
        recently updated."""
        return await self.find(search.query_terms(query), language=language, drafts=drafts,
                               tag=tag, limit=limit)

    async def find(self, terms: Sequence[str], *, language: str | None = None,
                   drafts: bool = False, tag: str | None = None, limit: int = 10
                   ) -> list[dict[str, Any]]:
        """search() for terms already made (search.terms)."""
        where: list[ColumnElement[bool]] = []
        if not drafts:
            where.append(Article.status == "published")
        if language:
            where.append(Article.language == language)
        async with self._db.session(readonly=True) as s:
            if not terms:
                rows = await s.scalars(select(Article).where(*where)
                                       .order_by(Article.updated_at.desc()).limit(500))
                found = [a for a in rows if tag is None or tag in (a.tags or [])]
                return [view(a) for a in found[:limit]]
            size, avg = (await s.execute(select(func.count(), func.avg(Article.length))
                                         .where(*where))).one()
            hits = await s.execute(
                select(ArticleTerm.article_id, ArticleTerm.term, ArticleTerm.tf,
                       Article.length)
                .join(Article, Article.id == ArticleTerm.article_id)
                .where(ArticleTerm.term.in_(terms), *where))
            docs: dict[str, tuple[dict[str, int], int]] = {}
            for article_id, term, tf, length in hits:
                docs.setdefault(article_id, ({}, length))[0][term] = tf
            if tag is not None and docs:  # tags are JSON: filtered here, alike on both DBs
                tagged = await s.execute(select(Article.id, Article.tags)
                                         .where(Article.id.in_(docs)))
                keep = {i for i, tags in tagged if tag in (tags or [])}
                docs = {i: d for i, d in docs.items() if i in keep}
            frequency: dict[str, int] = {}
            for counts, _ in docs.values():
                for t in counts:
                    frequency[t] = frequency.get(t, 0) + 1
            ranked = search.rank(list(terms), docs,
                                 search.Corpus(int(size), float(avg or 0), frequency))
            wanted = ranked[:limit]
            read = {a.id: a for a in await s.scalars(
                select(Article).where(Article.id.in_([d for _, d in wanted])))}
        return [view(read[d], score) for score, d in wanted if d in read]
