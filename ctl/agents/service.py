"""Agents in the database, and the PJSIP endpoints rendered from them."""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ctl.agents.auth import ROLES, hash_password
from ctl.asterisk.config import AgentEndpoint
from ctl.errors import ConfigError, NotFound
from ctl.store.db import Database
from ctl.store.models import CHANNELS, Agent, LoginFailure

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,30}$")
EXTENSION = re.compile(r"^[0-9]{2,8}$")
# Taken by dialplan/extensions.conf.j2 ([agents]: the demo flow and the echo test).
RESERVED_EXTENSIONS = frozenset({"1000", "1999"})
REALM = "ctl"  # must match `realm` in asterisk-conf/pjsip_agents.conf.j2


def endpoint_name(username: str) -> str:
    return f"agent-{username}"


def sip_ha1(username: str, password: str) -> str:
    # MD5 is what SIP digest auth (RFC 2617) mandates; Asterisk stores only this hash.
    digest = f"{endpoint_name(username)}:{REALM}:{password}".encode()
    return hashlib.md5(digest, usedforsecurity=False).hexdigest()


class AgentService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, username: str, display_name: str, extension: str) -> tuple[Agent, str]:
        """A new agent and its SIP password (shown once: only its HA1 is stored)."""
        _validate(username, display_name, extension)
        password = secrets.token_urlsafe(18)
        agent = Agent(
            username=username, display_name=display_name.strip(), extension=extension,
            sip_ha1=sip_ha1(username, password), skills={}, languages=[], capacity={},
            # One password for the phone and the agent panel: printed once, never stored.
            password_hash=hash_password(password),
        )
        try:
            async with self._db.session() as s, s.begin():
                await _refuse_duplicates(s, username, extension)
                s.add(agent)
        except IntegrityError:
            # Lost a race with a concurrent create(): report it like the pre-check does.
            raise ConfigError(
                f"agent {username!r} or extension {extension} already exists"
            ) from None
        return agent, password

    async def list(self) -> builtins.list[Agent]:
        async with self._db.session(readonly=True) as s:
            return builtins.list(await s.scalars(select(Agent).order_by(Agent.username)))

    async def get(self, username: str) -> Agent:
        async with self._db.session(readonly=True) as s:
            agent = await s.scalar(select(Agent).where(Agent.username == username))
        if agent is None:
            raise NotFound(f"no agent {username!r}", reason="no_agent",
                           params={"name": username})
        return agent

    async def configure(self, username: str, changes: RoutingChanges) -> Agent:
        """Change how an agent is routed; fields left None stay as they are."""
        changes.validate()
        async with self._db.session() as s, s.begin():
            agent = await s.scalar(select(Agent).where(Agent.username == username))
            if agent is None:
                raise NotFound(f"no agent {username!r}")
            for name, value in vars(changes).items():
                if value is not None:
                    setattr(agent, name, value)
        return agent

    async def reset_password(self, username: str) -> str:
        password = secrets.token_urlsafe(18)
        async with self._db.session() as s, s.begin():
            agent = await s.scalar(select(Agent).where(Agent.username == username))
            if agent is None:
                raise NotFound(f"no agent {username!r}")
            agent.sip_ha1 = sip_ha1(username, password)
            agent.password_hash = hash_password(password)
            # A new password from an admin also lifts a lock from failed logins.
            await s.execute(delete(LoginFailure).where(LoginFailure.username == username))
        return password

    async def set_language(self, agent_id: str, language: str | None) -> None:
        """The agent desktop's language for this agent (None: the browser's)."""
        async with self._db.session() as s, s.begin():
            await s.execute(update(Agent).where(Agent.id == agent_id)
                            .values(ui_language=language))

    async def delete(self, username: str) -> None:
        async with self._db.session() as s, s.begin():
            agent = await s.scalar(select(Agent).where(Agent.username == username))
            if agent is None:
                raise NotFound(f"no agent {username!r}")
            await s.delete(agent)

    async def endpoints(self) -> builtins.list[AgentEndpoint]:
        return [
            AgentEndpoint(
                endpoint=endpoint_name(a.username), name=a.display_name,
                extension=a.extension, sip_ha1=a.sip_ha1, username=a.username,
            )
            for a in await self.list()
        ]


@dataclass
class RoutingChanges:
    skills: dict[str, int] | None = None
    languages: builtins.list[str] | None = None
    tier: int | None = None
    profile: builtins.list[dict[str, Any]] | None = None  # {queue, priority, delay}
    capacity: dict[str, int] | None = None
    voice_exclusive: bool | None = None
    role: str | None = None

    def validate(self) -> None:
        for skill, level in (self.skills or {}).items():
            if not 1 <= level <= 5:
                raise ConfigError(f"skill {skill!r}: level {level} is outside 1..5")
        for channel, n in (self.capacity or {}).items():
            if channel not in CHANNELS or not 0 <= n <= 50:
                raise ConfigError(f"capacity {channel}={n}: channel must be one of "
                                  f"{', '.join(sorted(CHANNELS))}, and 0..50 contacts")
        if self.role is not None and self.role not in ROLES:
            raise ConfigError(f"role {self.role!r}: one of {', '.join(ROLES)}")
        for entry in self.profile or []:
            if not entry.get("queue") or int(entry.get("priority", 1)) < 1 \
                    or float(entry.get("delay", 0)) < 0:
                raise ConfigError(f"profile entry {entry}: needs a queue, priority >= 1 and "
                                  "delay >= 0 seconds")


def _validate(username: str, display_name: str, extension: str) -> None:
    if not USERNAME.match(username):
        raise ConfigError(
            f"invalid agent username {username!r}",
            hint="1-31 characters: lower-case letters, digits, '_', '.', '-'; "
            "starting with a letter or digit",
        )
    if not EXTENSION.match(extension):
        raise ConfigError(f"invalid extension {extension!r}", hint="2 to 8 digits, e.g. 2001")
    if extension in RESERVED_EXTENSIONS:
        raise ConfigError(
            f"extension {extension} is reserved by the dialplan",
            hint=f"reserved: {', '.join(sorted(RESERVED_EXTENSIONS))}",
        )
    # The name ends up in a SIP caller-id between quotes, in pjsip.conf.
    if not display_name.strip() or any(c in display_name for c in '"\n\r;<>'):
        raise ConfigError(
            f"invalid agent display name {display_name!r}",
            hint='non-empty, without quotes, ";", "<", ">" or line breaks',
        )


async def _refuse_duplicates(s: AsyncSession, username: str, extension: str) -> None:
    stmt = select(Agent).where(or_(Agent.username == username, Agent.extension == extension))
    for other in await s.scalars(stmt):
        if other.username == username:
            raise ConfigError(f"agent {username!r} already exists")
        raise ConfigError(
            f"extension {extension} is already used by agent {other.username!r}"
        )
