"""Who is calling: the one place every handler resolves its caller (`who`).

Systems and tests send `Authorization: Bearer <token>`. The agent desktop's browser
sends the same token as an HttpOnly cookie instead, which a page of another site could
make the browser send too; so a cookie only counts on an unsafe method together with
the session's CSRF token in `X-CSRF-Token` (a header other sites cannot set), and a
websocket authenticated by cookie must come from this host's own page (Origin).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from ctl.agents.auth import Principal
from ctl.errors import Forbidden, Unauthorized
from ctl.services import SERVICES, Services

SESSION_COOKIE = "ctl_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def credentials(request: web.Request) -> tuple[str, bool]:
    """(token, came as a cookie); ("", False) when the request carries none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token, False
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return cookie, bool(cookie)


async def who(request: web.Request, role: str = "agent") -> tuple[Services, Principal]:
    services = request.app[SERVICES]
    token, by_cookie = credentials(request)
    if not token:
        raise Unauthorized("missing bearer token or session cookie",
                           hint="POST /api/v1/login first, or log in at /desk/login")
    principal = await services.auth.check(token)
    if by_cookie and request.method in UNSAFE:
        services.auth.check_csrf(token, request.headers.get(CSRF_HEADER))
    principal.require(role)
    return services, principal


def same_origin(request: web.Request) -> None:
    """Refuse a browser request sent by a page of another site (no Origin: not a browser
    page, which always sends one on websockets and cross-origin posts)."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise Forbidden(f"origin {origin} is not this site ({request.host})")
