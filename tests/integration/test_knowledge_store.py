"""Knowledge search on real SQLite and PostgreSQL: Chinese, English and mixed queries,
ranking, drafts, re-indexing on edits, versions; and the property that an article holding
a query's words is found, before and after edits."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from ctl.errors import BadRequest, Conflict, NotFound
from ctl.knowledge.articles import Articles
from ctl.knowledge.demo import ARTICLES
from ctl.store.db import Database, migrate
from ctl.store.models import ArticleTerm
from tests.integration.channels_app import database
from tests.integration.conftest import PG_ADMIN
from tests.integration.tickets_db import ticket_db

__all__ = ["ticket_db"]


@pytest.fixture(scope="module")
async def kb(ticket_db: Database) -> AsyncIterator[Articles]:
    articles = Articles(ticket_db)
    for a in ARTICLES:
        await articles.create(a, actor="admin")
    await articles.create({"title": "Draft: refunds for gift cards", "language": "en",
                           "body": "gift card refunds are not possible yet"}, actor="admin")
    yield articles


def _titles(found: list[dict[str, Any]]) -> list[str]:
    return [a["title"] for a in found]


async def test_english_words_find_articles_in_any_inflection(kb: Articles) -> None:
    assert _titles(await kb.search("refunded"))[0] == "Refund policy"
    assert _titles(await kb.search("How long does SHIPPING take?"))[0] == "Where is my order?"
    assert _titles(await kb.search("forgot my passwords"))[0] == "Reset a password"


async def test_chinese_words_find_articles_without_spaces(kb: Articles) -> None:
    assert _titles(await kb.search("退款"))[0] == "退款政策"
    assert _titles(await kb.search("我想查询一下物流"))[0] == "查询订单物流"
    assert _titles(await kb.search("密码忘了"))[0] == "重置密码"
    assert await kb.search("天气") == []


async def test_mixed_queries_rank_both_languages(kb: Articles) -> None:
    found = _titles(await kb.search("refund 退款"))
    assert set(found[:2]) == {"Refund policy", "退款政策"}
    assert _titles(await kb.search("iPhone退款"))[0] == "退款政策"
    assert _titles(await kb.search("refund", language="zh-CN")) == []
    assert _titles(await kb.search("退款", language="zh-CN")) == ["退款政策"]


async def test_drafts_only_for_editors_and_tags_filter(kb: Articles) -> None:
    assert "Draft: refunds for gift cards" not in _titles(await kb.search("gift card"))
    assert _titles(await kb.search("gift card", drafts=True))[0] == \
        "Draft: refunds for gift cards"
    assert _titles(await kb.search("", tag="物流")) == ["查询订单物流"]
    assert _titles(await kb.search("refund", tag="billing")) == ["Refund policy"]


async def test_edits_reindex_and_keep_versions(kb: Articles) -> None:
    a = await kb.create({"title": "Warranty", "language": "en", "status": "published",
                         "body": "repairs within two years"}, actor="sue")
    assert _titles(await kb.search("repairs")) == ["Warranty"]
    b = await kb.update(a["id"], {"body": "replacements within one year", "version": 1},
                        actor="bob")
    assert (b["version"], b["updated_by"]) == (2, "bob")
    assert await kb.search("repairs") == []
    assert _titles(await kb.search("replacement")) == ["Warranty"]
    with pytest.raises(Conflict, match="version 2, not 1"):
        await kb.update(a["id"], {"title": "x", "version": 1}, actor="sue")
    [old] = await kb.versions(a["id"])
    assert (old["version"], old["body"], old["updated_by"]) == \
        (1, "repairs within two years", "sue")
    await kb.update(a["id"], {"status": "draft"}, actor="sue")
    assert await kb.search("replacement") == []
    with pytest.raises(NotFound):
        await kb.get(a["id"], drafts=False)
    await kb.delete(a["id"])
    async with kb._db.session(readonly=True) as s:
        left = await s.scalar(select(func.count()).select_from(ArticleTerm)
                              .where(ArticleTerm.article_id == a["id"]))
    assert left == 0
    with pytest.raises(NotFound):
        await kb.delete(a["id"])


async def test_bad_articles_are_refused_naming_the_field(kb: Articles) -> None:
    with pytest.raises(BadRequest, match="title is required"):
        await kb.create({"title": " ", "language": "en"}, actor="x")
    with pytest.raises(BadRequest, match="language 'english' is not a language tag"):
        await kb.create({"title": "x", "language": "english"}, actor="x")
    with pytest.raises(BadRequest, match="status 'live' is not one of draft, published"):
        await kb.create({"title": "x", "language": "en", "status": "live"}, actor="x")
    with pytest.raises(BadRequest, match="unknown field 'author'"):
        await kb.create({"title": "x", "language": "en", "author": "me"}, actor="x")


# --- the property, on a SQLite file of its own (hypothesis drives a fresh loop) ---------

_VOCABULARY = ["refund", "invoice", "warranty", "delivery", "password", "account",
               "退款", "发票", "保修", "物流", "密码", "账户", "订单"]
_WORDS = st.lists(st.sampled_from(_VOCABULARY), min_size=1, max_size=6)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def property_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[str]:
    with _database(request.param, tmp_path_factory.mktemp("kb")) as url:
        migrate(url)
        yield url


@contextlib.contextmanager
def _database(kind: str, where: Path) -> Iterator[str]:
    """A fresh database for synchronous code (hypothesis runs a loop per example)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{where}/kb.db"
        return
    name = f"kb_{secrets.token_hex(5)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_WORDS, min_size=1, max_size=6), _WORDS, st.data())
def test_an_article_holding_the_query_is_found_before_and_after_edits(
        property_db: str, bodies: list[list[str]], new_body: list[str],
        data: st.DataObject) -> None:
    query = data.draw(st.lists(st.sampled_from(bodies[0]), min_size=1, max_size=3))
    gone = sorted(set(bodies[0]) - set(new_body))
    asyncio.run(_found_before_and_after(property_db, bodies, new_body, query, gone))


async def _found_before_and_after(url: str, bodies: list[list[str]], new_body: list[str],
                                  query: list[str], gone: list[str]) -> None:
    db = Database(url)
    kb = Articles(db)
    tag = secrets.token_hex(4)  # this example's articles only
    try:
        ids = [(await kb.create({"title": tag, "language": "en", "status": "published",
                                 "tags": [tag], "body": " ".join(words)}, actor="p"))["id"]
               for words in bodies]
        found = await kb.search(" ".join(query), tag=tag, limit=200)
        assert ids[0] in [a["id"] for a in found]
        await kb.update(ids[0], {"body": " ".join(new_body)}, actor="p")
        found = await kb.search(" ".join(new_body), tag=tag, limit=200)
        assert ids[0] in [a["id"] for a in found]
        for word in gone:  # a word the edit removed no longer finds it
            assert ids[0] not in [a["id"] for a in await kb.search(word, tag=tag, limit=200)]
    finally:
        await db.close()


_QUERIES = ["refund", "退款", "refund 退款", "iPhone退款", "shipping order", "密码 password",
            "my parcel never arrived", "订单物流", "cards", "天气"]


async def test_sqlite_and_postgresql_rank_alike(tmp_path: Path) -> None:
    """The same articles, the same queries: the same titles in the same order with the
    same scores on both databases."""
    answers = []
    for kind in ("sqlite", "pg"):
        async with database(kind, tmp_path) as url:
            await asyncio.to_thread(migrate, url)
            db = Database(url)
            try:
                kb = Articles(db)
                for a in ARTICLES:
                    await kb.create(a, actor="ctl")
                answers.append({q: [(a["title"], a["score"]) for a in await kb.search(q)]
                                for q in _QUERIES})
                for a in ARTICLES:  # every demo article is found by its title first
                    assert _titles(await kb.search(a["title"]))[0] == a["title"]
            finally:
                await db.close()
    assert answers[0] == answers[1]
    assert answers[0]["天气"] == [] and len(answers[0]["refund 退款"]) >= 2
