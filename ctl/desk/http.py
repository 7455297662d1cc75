"""The agent desktop's pages: the login form, the panel, its strings and static files.

The panel is one page; feature modules are the `static/modules/*.js` files (each
`export function mount(desk)`), found here at each page load, so adding a module
touches no shared file. What the page does after loading goes through /api/v1 with the
session cookie set here (ctl/web/auth.py checks it and its CSRF token).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from ctl.agents.auth import Principal
from ctl.desk import i18n
from ctl.desk.headers import desk_policy, page_headers
from ctl.errors import AccountLocked, BadRequest, Unauthorized
from ctl.routing.http import _body
from ctl.services import SERVICES, Services
from ctl.web.auth import SESSION_COOKIE, credentials, same_origin
from ctl.web.auth import who as who_is

routes = web.RouteTableDef()
HERE = Path(__file__).parent
STATIC = HERE / "static"
LANG_COOKIE = "ctl_lang"
_PAGES = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                            autoescape=True, undefined=jinja2.StrictUndefined)


def _render(request: web.Request, name: str, lang: str, status: int = 200,
            **values: Any) -> web.Response:
    table = i18n.strings(lang)

    def t(key: str, **fill: Any) -> str:
        return table.get(key, key).format(**fill) if fill else table.get(key, key)

    html = _PAGES.get_template(name).render(lang=lang, t=t, languages=i18n.LANGUAGES, **values)
    policy = desk_policy(request.app[SERVICES].phones.ws_url)
    return web.Response(text=html, content_type="text/html", status=status,
                        headers=page_headers(policy))


def _https(request: web.Request) -> bool:
    """Served over https, directly or behind a TLS-terminating proxy (which says so; a
    false claim only makes the browser withhold the cookie over plain http)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip()
    return request.secure or forwarded == "https"


def _language(request: web.Request, *setting: str | None) -> str:
    return i18n.pick(request.query.get("lang"), *setting, request.cookies.get(LANG_COOKIE),
                     accept=request.headers.get("Accept-Language", ""))


def _remember_language(request: web.Request, response: web.StreamResponse, lang: str) -> None:
    if request.query.get("lang") == lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/desk",
                            samesite="Strict", secure=_https(request))


async def _session(request: web.Request) -> tuple[Services, Principal, str] | None:
    services = request.app[SERVICES]
    token, by_cookie = credentials(request)
    if not by_cookie:
        return None
    try:
        return services, await services.auth.check(token), token
    except Unauthorized:
        return None


def _listing(folder: str, suffix: str) -> list[str]:
    return [f"/desk/static/{folder}/{p.name}" for p in sorted((STATIC / folder).glob(suffix))]


@routes.get("/desk")
async def bare(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/desk/")


@routes.get("/desk/")
async def panel(request: web.Request) -> web.Response:
    found = await _session(request)
    if found is None:
        raise web.HTTPSeeOther("/desk/login")
    services, who, token = found
    agent = await services.agents.get(who.username)
    lang = _language(request, agent.ui_language)
    reasons = services.settings.desk.away_reasons
    config = {
        "me": {"agent_id": who.agent_id, "username": who.username, "role": who.role,
               "language": lang, "display_name": agent.display_name},
        "csrf": services.auth.csrf_token(token),
        "modules": _listing("modules", "*.js"),
        "i18n": f"/desk/i18n/{lang}.json",
        "languages": list(i18n.LANGUAGES),
        "away_reasons": [{"code": code, "label": labels.get(lang, labels["en"])}
                         for code, labels in reasons.items()],
    }
    response = _render(request, "desk.html", lang, styles=_listing("css", "*.css"),
                       config=config)
    _remember_language(request, response, lang)
    return response


@routes.get("/desk/login")
async def login_page(request: web.Request) -> web.Response:
    if await _session(request) is not None:
        raise web.HTTPSeeOther("/desk/")
    lang = _language(request)
    response = _render(request, "login.html", lang, error="", username="")
    _remember_language(request, response, lang)
    return response


@routes.post("/desk/login")
async def login(request: web.Request) -> web.Response:
    """A plain form post: the login page works before (and without) any script."""
    same_origin(request)  # no other site may log a browser in (login CSRF)
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    lang = _language(request)
    services = request.app[SERVICES]
    try:
        token, _ = await services.auth.login(username.strip(), password)
    except AccountLocked as e:
        until = f"{e.until:%H:%M:%S} UTC"
        return _render(request, "login.html", lang, status=e.status, username=username,
                       error=i18n.strings(lang)["shell.login_locked"].format(until=until))
    except Unauthorized as e:
        return _render(request, "login.html", lang, status=e.status, username=username,
                       error=i18n.strings(lang)["shell.login_wrong"])
    response = web.Response(status=303, headers={"Location": "/desk/"})
    response.set_cookie(SESSION_COOKIE, token, max_age=services.auth.lifetime_seconds,
                        path="/", httponly=True, samesite="Strict", secure=_https(request))
    return response


@routes.put("/api/v1/me/language")
async def set_language(request: web.Request) -> web.Response:
    """{"language": "zh-CN"} (or null: the browser's) for this agent's desk, any device."""
    services, who = await who_is(request)
    language = (await _body(request)).get("language")
    if language is not None and language not in i18n.LANGUAGES:
        raise BadRequest(f"language {language!r}: use one of {', '.join(i18n.LANGUAGES)} "
                         "or null")
    await services.agents.set_language(who.agent_id, language)
    return web.json_response({"language": language})


@routes.get("/desk/i18n/{lang}.json")
async def strings(request: web.Request) -> web.Response:
    return web.json_response(i18n.strings(request.match_info["lang"]),
                             headers={"Cache-Control": "no-cache"})


routes.static("/desk/static", STATIC)


async def revalidate(request: web.Request, response: web.StreamResponse) -> None:
    """Static files are checked with the server (a cheap 304) before each use: a module
    imports others by plain path, so an upgraded controller must never meet stale ones."""
    if request.path.startswith("/desk/static/"):
        response.headers.setdefault("Cache-Control", "no-cache")
