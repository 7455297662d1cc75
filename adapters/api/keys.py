"""Platforms' keys to the API channel: made by admins, shown once, kept only as hashes.

A key is 32 random bytes, so its SHA-256 is enough to keep (no password hashing: there
is nothing to guess). Each key has its own webhook secret, which signs what ctl sends
the platform; it must be kept as is to sign, and is shown once too.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update

from ctl.errors import BadRequest, NotFound, Unauthorized
from ctl.store.db import Database
from ctl.store.models import ApiKey, utcnow

PREFIX = "ctlk_"
# A character that shows: required in names and texts. Spelled out rather than \S, which
# means other characters in Python than in the OpenAPI document's (ECMA) regexes.
VISIBLE = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Platform:
    """Who is calling with a key."""

    key_id: str
    name: str
    webhook_url: str | None
    webhook_secret: str


def _view(row: ApiKey) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "webhook_url": row.webhook_url,
            "created_by": row.created_by, "created_at": row.created_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}


def _webhook_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 500:
        raise BadRequest("webhook_url must be an http(s) URL of at most 500 characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"webhook_url {value[:80]!r} is not an http(s) URL")
    return value


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, name: Any, webhook_url: Any, created_by: str
                     ) -> dict[str, Any]:
        """A new key: its view with the key and the webhook secret (shown only now)."""
        if not isinstance(name, str) or not re.search(VISIBLE, name) or len(name) > 100:
            raise BadRequest("name must be the platform's name (1-100 characters)")
        key = PREFIX + secrets.token_urlsafe(32)
        secret = "whsec_" + secrets.token_urlsafe(32)
        row = ApiKey(name=name.strip(), key_hash=_hash(key), webhook_url=_webhook_url(
            webhook_url), webhook_secret=secret, created_by=created_by, created_at=utcnow())
        async with self._db.session() as s, s.begin():
            s.add(row)
        return {**_view(row), "key": key, "webhook_secret": secret}

    async def list(self) -> list[dict[str, Any]]:
        async with self._db.session(readonly=True) as s:
            rows = await s.scalars(select(ApiKey).order_by(ApiKey.created_at))
            return [_view(r) for r in rows]

    async def revoke(self, key_id: str) -> dict[str, Any]:
        """The key stops working at once; the row stays (who had access, until when)."""
        async with self._db.session() as s, s.begin():
            await s.execute(update(ApiKey).where(ApiKey.id == key_id,
                                                 ApiKey.revoked_at.is_(None))
                            .values(revoked_at=utcnow()))
            row = await s.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"no API key {key_id!r}")
            return _view(row)

    async def check(self, key: str | None) -> Platform:
        if not key:
            raise Unauthorized("missing X-API-Key header",
                               hint="an admin creates keys: POST /api/v1/api-keys")
        async with self._db.session(readonly=True) as s:
            row = await s.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(key)))
        if row is None or row.revoked_at is not None:
            raise Unauthorized("unknown or revoked API key")
        return Platform(row.id, row.name, row.webhook_url, row.webhook_secret)

    async def get(self, key_id: str) -> Platform | None:
        """The key's platform (revoked too: replies in its contacts are still signed)."""
        async with self._db.session(readonly=True) as s:
            row = await s.get(ApiKey, key_id)
        return Platform(row.id, row.name, row.webhook_url, row.webhook_secret) \
            if row is not None else None
