"""Failed logins and the lock they lead to, kept in the database: every controller
process sees the same count, and a restart does not unlock anyone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ctl.errors import AccountLocked
from ctl.store.db import Database
from ctl.store.models import LoginFailure, utcnow

_KEY = 64  # longer names are no agent's (usernames are 32 at most) and share one row


class Lockout:
    def __init__(self, db: Database, after: int, period: float,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._after = after
        self._period = timedelta(seconds=period)
        self._now = clock

    async def check(self, username: str) -> None:
        """AccountLocked while `username` is locked (before any password is checked)."""
        async with self._db.session(readonly=True) as s:
            until = await s.scalar(select(LoginFailure.locked_until)
                                   .where(LoginFailure.username == username[:_KEY]))
        if until is not None and until > self._now():
            raise AccountLocked(until)

    async def failed(self, username: str) -> datetime | None:
        """Count a failure; the time the login is now locked until, if this locked it."""
        key, now = username[:_KEY], self._now()
        # One UPDATE counts atomically however many processes fail at once; failures
        # older than the period no longer count as "in a row".
        count = update(LoginFailure).where(LoginFailure.username == key).values(
            failures=case((LoginFailure.last_at < now - self._period, 1),
                          else_=LoginFailure.failures + 1),
            last_at=now).returning(LoginFailure.failures)
        for _ in range(2):
            try:
                async with self._db.session() as s, s.begin():
                    failures = (await s.execute(count)).scalar()
                    if failures is None:
                        await s.execute(insert(LoginFailure).values(
                            username=key, failures=1, last_at=now, locked_until=None))
                        failures = 1
                    if failures < self._after:
                        return None
                    until = now + self._period
                    await s.execute(update(LoginFailure).where(LoginFailure.username == key)
                                    .values(failures=0, locked_until=until))
                    return until
            except IntegrityError:  # another process inserted the row first: count again
                continue
        return None

    async def succeeded(self, username: str) -> None:
        async with self._db.session() as s, s.begin():
            await s.execute(delete(LoginFailure).where(LoginFailure.username == username[:_KEY]))
            # Rows of names nobody logs in as again would stay for ever otherwise.
            await s.execute(delete(LoginFailure).where(
                LoginFailure.last_at < self._now() - 2 * self._period))
