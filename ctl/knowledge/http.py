"""The knowledge API: articles under /api/v1/knowledge, quick replies under
/api/v1/quick-replies, suggestions for a conversation. Any logged-in agent reads
published articles and uses replies; supervisors and admins edit articles and the team's
replies (the service enforces who may change what)."""

from __future__ import annotations

from aiohttp import web

from ctl.errors import BadRequest
from ctl.knowledge import variables
from ctl.knowledge.service import Knowledge
from ctl.routing.http import _body, _who
from ctl.services import SERVICES

routes = web.RouteTableDef()
_A = "/api/v1/knowledge/articles"
_R = "/api/v1/quick-replies"


def _knowledge(request: web.Request) -> Knowledge:
    return request.app[SERVICES].knowledge


def _limit(request: web.Request, default: int, top: int) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 0 < int(raw) <= top:
        raise BadRequest(f"limit {raw!r}: a whole number from 1 to {top}")
    return int(raw)


@routes.get(_A)
async def search_articles(request: web.Request) -> web.Response:
    """?q= keywords (Chinese and/or English), &language=, &tag=, &drafts=1 (editors)."""
    _, who = await _who(request)
    q = request.query
    found = await _knowledge(request).articles.search(
        q.get("q", ""), language=q.get("language") or None, tag=q.get("tag") or None,
        drafts=who.has("supervisor") and q.get("drafts") in ("1", "true"),
        limit=_limit(request, 10, 200))
    return web.json_response({"articles": found})


@routes.post(_A)
async def create_article(request: web.Request) -> web.Response:
    _, who = await _who(request, "supervisor")
    article = await _knowledge(request).articles.create(await _body(request), who.username)
    return web.json_response(article, status=201)


@routes.get(_A + "/{article}")
async def get_article(request: web.Request) -> web.Response:
    _, who = await _who(request)
    return web.json_response(await _knowledge(request).articles.get(
        request.match_info["article"], drafts=who.has("supervisor")))


@routes.patch(_A + "/{article}")
async def update_article(request: web.Request) -> web.Response:
    _, who = await _who(request, "supervisor")
    return web.json_response(await _knowledge(request).articles.update(
        request.match_info["article"], await _body(request), who.username))


@routes.delete(_A + "/{article}")
async def delete_article(request: web.Request) -> web.Response:
    await _who(request, "supervisor")
    await _knowledge(request).articles.delete(request.match_info["article"])
    return web.json_response({"ok": True})


@routes.get(_A + "/{article}/versions")
async def article_versions(request: web.Request) -> web.Response:
    await _who(request, "supervisor")
    versions = await _knowledge(request).articles.versions(request.match_info["article"])
    return web.json_response({"versions": versions})


@routes.get(_R)
async def list_replies(request: web.Request) -> web.Response:
    """The caller's personal replies and the team's; ?q= ranks them by keywords."""
    _, who = await _who(request)
    found = await _knowledge(request).replies.search(
        who, request.query.get("q", ""), request.query.get("language") or None,
        _limit(request, 200, 500))
    return web.json_response({"replies": found})


@routes.get(_R + "/variables")
async def reply_variables(request: web.Request) -> web.Response:
    await _who(request)
    return web.json_response({"variables": variables.VARIABLES})


@routes.post(_R)
async def create_reply(request: web.Request) -> web.Response:
    """{"scope": "personal"|"team", "title", "shortcut", "language", "body"}."""
    _, who = await _who(request)
    reply = await _knowledge(request).replies.create(who, await _body(request))
    return web.json_response(reply, status=201)


@routes.patch(_R + "/{reply}")
async def update_reply(request: web.Request) -> web.Response:
    _, who = await _who(request)
    return web.json_response(await _knowledge(request).replies.update(
        who, request.match_info["reply"], await _body(request)))


@routes.delete(_R + "/{reply}")
async def delete_reply(request: web.Request) -> web.Response:
    _, who = await _who(request)
    await _knowledge(request).replies.delete(who, request.match_info["reply"])
    return web.json_response({"ok": True})


@routes.post(_R + "/{reply}/render")
async def render_reply(request: web.Request) -> web.Response:
    """{"contact_id": ...}: the text with the conversation's variables filled in."""
    _, who = await _who(request)
    contact_id = (await _body(request)).get("contact_id")
    if contact_id is not None and not isinstance(contact_id, str):
        raise BadRequest("contact_id must be a contact's id")
    return web.json_response(await _knowledge(request).render(
        who, request.match_info["reply"], contact_id))


@routes.get("/api/v1/contacts/{contact}/suggestions")
async def suggestions(request: web.Request) -> web.Response:
    """Articles and replies for what the conversation's customer wrote (or said)."""
    _, who = await _who(request)
    return web.json_response(await _knowledge(request).suggest(
        who, request.match_info["contact"], _limit(request, 5, 50)))
