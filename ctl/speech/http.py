"""Intent and sentiment per contact, for the desk and supervisors (thin: Insights reads).

GET /api/v1/contacts/{id}/nlp          the contact's insight and every analysed text
GET /api/v1/nlp?contacts=ID,ID,...     supervisors: the insight of each listed contact
GET /api/v1/nlp/open                   supervisors: every open contact's, with its state
GET /api/v1/nlp/summary[?hours=24]     supervisors: intents, sentiments, frequent keywords
"""

from __future__ import annotations

from aiohttp import web

from ctl.errors import BadRequest, Forbidden
from ctl.web.auth import who as _who

routes = web.RouteTableDef()
_MAX_CONTACTS = 500


@routes.get("/api/v1/contacts/{contact}/nlp")
async def contact_nlp(request: web.Request) -> web.Response:
    services, who = await _who(request)
    contact_id = request.match_info["contact"]
    contact = await services.contacts.get(contact_id)
    if who.role == "agent" and contact.agent_id != who.agent_id:
        raise Forbidden(f"contact {contact_id} is not yours")
    insight = (await services.insights.latest([contact_id])).get(contact_id)
    return web.json_response({"contact_id": contact_id, "insight": insight,
                              "texts": await services.insights.events(contact_id)})


@routes.get("/api/v1/nlp")
async def contacts_nlp(request: web.Request) -> web.Response:
    services, _ = await _who(request, "supervisor")
    ids = [c for c in request.query.get("contacts", "").split(",") if c]
    if not ids or len(ids) > _MAX_CONTACTS:
        raise BadRequest(f"contacts must list 1 to {_MAX_CONTACTS} contact ids, "
                         "comma-separated")
    return web.json_response({"contacts": await services.insights.latest(ids)})


@routes.get("/api/v1/nlp/open")
async def open_nlp(request: web.Request) -> web.Response:
    services, _ = await _who(request, "supervisor")
    return web.json_response({"contacts": await services.insights.of_open_contacts()})


@routes.get("/api/v1/nlp/summary")
async def summary(request: web.Request) -> web.Response:
    services, _ = await _who(request, "supervisor")
    try:
        hours = float(request.query.get("hours", "24"))
    except ValueError:
        raise BadRequest("hours must be a number") from None
    if not 0 < hours <= 24 * 92:
        raise BadRequest("hours must be more than 0 and at most 2208 (92 days)")
    return web.json_response(await services.insights.summary(hours))
