"""Logins to the agent API and desk: argon2id password hashes (scrypt ones, from before,
still verify and are replaced at the next login), bearer tokens kept only as hashes,
failed logins counted toward a lock (lockout.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update

from ctl.agents.lockout import Lockout
from ctl.errors import AccountLocked, Forbidden, Unauthorized
from ctl.store.db import Database
from ctl.store.models import Agent, AgentSession, utcnow

# OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): ~50 ms per check on this class of
# CPU, like the scrypt cost before it, so logins stay cheap and guessing stays dear.
_ARGON2 = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
ROLES = ("agent", "supervisor", "admin")


def hash_password(password: str) -> str:
    return _ARGON2.hash(password)


def verify_password(password: str, stored: str | None) -> bool:
    stored = stored or ""
    if stored.startswith("$argon2"):
        try:
            return _ARGON2.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    try:  # hashes written before argon2
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(got, _unb64(digest))


def needs_rehash(stored: str) -> bool:
    return not stored.startswith("$argon2") or _ARGON2.check_needs_rehash(stored)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    agent_id: str
    username: str
    role: str

    def has(self, role: str) -> bool:
        """At least `role` (an admin has the supervisor's rights, a supervisor the agent's)."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def require(self, role: str) -> None:
        if not self.has(role):
            raise Forbidden(f"this needs the {role} role; {self.username} is {self.role}",
                            reason="role", params={"role": role})


class AuthService:
    def __init__(self, db: Database, session_hours: float, csrf_key: str,
                 lockout: Lockout) -> None:
        self._db = db
        self.lockout = lockout
        self._lifetime = timedelta(hours=session_hours)
        self.lifetime_seconds = int(self._lifetime.total_seconds())
        self._csrf_key = csrf_key.encode()

    @staticmethod
    def topic(token: str) -> str:
        """The push topic of one session's websockets (told when it ends)."""
        return f"session:{_token_id(token)}"

    def csrf_token(self, token: str) -> str:
        """The session's CSRF token: derived, so nothing more is stored, and useless for
        any other session."""
        return hmac.new(self._csrf_key, token.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, token: str, sent: str | None) -> None:
        if not sent:
            raise Forbidden("missing CSRF token: send the X-CSRF-Token header "
                            "(the desk page has it) with requests that change something")
        if not hmac.compare_digest(sent, self.csrf_token(token)):
            raise Forbidden("wrong CSRF token for this session: reload the desk page",
                            reason="csrf")

    async def login(self, username: str, password: str) -> tuple[str, Principal]:
        await self.lockout.check(username)
        async with self._db.session(readonly=True) as s:
            agent = await s.scalar(select(Agent).where(Agent.username == username))
        stored = agent.password_hash if agent is not None else None
        # The hash is computed even for an unknown user, so timing does not tell names.
        ok = await asyncio.to_thread(verify_password, password, stored or _DUMMY)
        if agent is None or not ok or stored is None:
            locked = await self.lockout.failed(username)
            if locked is not None:
                raise AccountLocked(locked)
            raise Unauthorized("wrong username or password")
        await self.lockout.succeeded(username)
        rehashed = await asyncio.to_thread(hash_password, password) \
            if needs_rehash(stored) else None
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with self._db.session() as s, s.begin():
            await s.execute(delete(AgentSession).where(AgentSession.expires_at < now))
            if rehashed is not None:
                await s.execute(update(Agent)  # unless the password changed meanwhile
                                .where(Agent.id == agent.id, Agent.password_hash == stored)
                                .values(password_hash=rehashed))
            s.add(AgentSession(id=_token_id(token), agent_id=agent.id, created_at=now,
                               expires_at=now + self._lifetime))
        return token, Principal(agent.id, agent.username, agent.role)

    async def check(self, token: str) -> Principal:
        async with self._db.session(readonly=True) as s:
            row = await s.get(AgentSession, _token_id(token))
            agent = await s.get(Agent, row.agent_id) if row is not None else None
        if row is None or agent is None or row.expires_at < utcnow():
            raise Unauthorized("not logged in, or the session expired",
                               hint="POST /api/v1/login with username and password")
        return Principal(agent.id, agent.username, agent.role)

    async def logout(self, token: str) -> None:
        async with self._db.session() as s, s.begin():
            await s.execute(delete(AgentSession).where(AgentSession.id == _token_id(token)))


_DUMMY = hash_password(secrets.token_urlsafe(8))
