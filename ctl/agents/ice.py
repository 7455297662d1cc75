"""ICE servers for the browser softphone (`asterisk.ice_servers`): STUN finds a remote
agent's public address, TURN relays the media when no direct path exists. Each server is
handed to the agent's browser as an RTCIceServer (GET /api/v1/me/phone).

A TURN server may have fixed credentials (`username`, `credential`) or a shared `secret`
(the TURN REST convention, coturn's `use-auth-secret`): then every agent gets its own
credentials that expire after `ttl`, so a password copied out of one browser stops
working by itself and the TURN server needs no list of agents.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ctl.durations import Seconds

_URL = r"^(stuns?|turns?):[^\s]+$"


class IceServer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None
    secret: str | None = None  # TURN REST: a credential per agent instead of one for all
    ttl: Seconds = Field(86400.0, ge=60)  # how long a per-agent credential is good for

    @model_validator(mode="after")
    def _check(self) -> IceServer:
        for url in self.urls:
            if not re.fullmatch(_URL, url):
                raise ValueError(f"ICE server {url!r}: use stun:, stuns:, turn: or turns:")
        turn = any(u.startswith("turn") for u in self.urls)
        fixed = self.username is not None or self.credential is not None
        if self.secret is not None and fixed:
            raise ValueError("give a TURN server either username and credential, or secret")
        if fixed and (self.username is None or self.credential is None):
            raise ValueError("a TURN server's username needs its credential, and back")
        if turn and not (fixed or self.secret):
            raise ValueError(f"TURN server {self.urls[0]!r} needs username and credential, "
                             "or secret (TURN REST)")
        return self


def rest_credentials(secret: str, user: str, ttl: float, now: float | None = None
                     ) -> tuple[str, str]:
    """TURN REST: username "<expiry>:<user>", password base64(HMAC-SHA1(secret, username)),
    which the TURN server recomputes from its copy of the secret."""
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def for_browser(servers: list[IceServer], user: str) -> list[dict[str, Any]]:
    """The RTCIceServer list one agent's browser uses (its own REST credentials)."""
    out: list[dict[str, Any]] = []
    for server in servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.secret is not None:
            entry["username"], entry["credential"] = rest_credentials(
                server.secret, user, server.ttl)
        elif server.username is not None:
            entry["username"], entry["credential"] = server.username, server.credential
        out.append(entry)
    return out


def refresh_after(servers: list[IceServer]) -> float | None:
    """Seconds after which the browser should fetch fresh credentials (half the shortest
    lifetime: a call answered just before expiry still gets working ones); None: never."""
    lifetimes = [s.ttl for s in servers if s.secret is not None]
    return min(lifetimes) / 2 if lifetimes else None
