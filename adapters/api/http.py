"""The API channel's endpoints (thin: ApiKeys and ApiChannel decide).

Admins (bearer token or desk session):
POST   /api/v1/api-keys {"name", "webhook_url"?}  a key and webhook secret, shown once
GET    /api/v1/api-keys                           the keys (never the key itself)
DELETE /api/v1/api-keys/{id}                      revoke
Platforms (`X-API-Key`):
POST /api/v1/channel/contacts {"customer": {"kind", "value", "name"?}, "conversation"?,
     "subject"?, "queue"?, "message": {"id", "text"}}  a customer's message: the contact
POST /api/v1/channel/contacts/{id}/messages {"message": {"id", "text"}}  the next one
GET  /api/v1/channel/contacts/{id}/messages?after=SEQ  its messages (agents' replies)
POST /api/v1/channel/messages/{id}/status {"status", "reason"?}  a reply's delivery
"""

from __future__ import annotations

from aiohttp import web

from adapters.api.keys import Platform
from ctl.errors import BadRequest
from ctl.routing.http import _body, _who
from ctl.services import SERVICES, Services

routes = web.RouteTableDef()
KEY_HEADER = "X-API-Key"


async def _platform(request: web.Request) -> tuple[Services, Platform]:
    services = request.app[SERVICES]
    return services, await services.api_keys.check(request.headers.get(KEY_HEADER))


@routes.post("/api/v1/api-keys")
async def create_key(request: web.Request) -> web.Response:
    services, who = await _who(request, "admin")
    body = await _body(request)
    made = await services.api_keys.create(body.get("name"), body.get("webhook_url"),
                                          who.username)
    return web.json_response(made, status=201)


@routes.get("/api/v1/api-keys")
async def list_keys(request: web.Request) -> web.Response:
    services, _ = await _who(request, "admin")
    return web.json_response({"keys": await services.api_keys.list()})


@routes.delete("/api/v1/api-keys/{key}")
async def revoke_key(request: web.Request) -> web.Response:
    services, _ = await _who(request, "admin")
    return web.json_response(await services.api_keys.revoke(request.match_info["key"]))


@routes.post("/api/v1/channel/contacts")
async def open_contact(request: web.Request) -> web.Response:
    services, platform = await _platform(request)
    got = await services.api_channel.open(platform, await _body(request))
    return web.json_response(got, status=200 if got["duplicate"] else 201)


@routes.post("/api/v1/channel/contacts/{contact}/messages")
async def post_message(request: web.Request) -> web.Response:
    services, platform = await _platform(request)
    got = await services.api_channel.post(platform, request.match_info["contact"],
                                          await _body(request))
    return web.json_response(got, status=200 if got["duplicate"] else 201)


@routes.get("/api/v1/channel/contacts/{contact}/messages")
async def poll(request: web.Request) -> web.Response:
    services, platform = await _platform(request)
    raw = request.query.get("after", "0")
    if not raw.isdigit() or len(raw) > 12:
        raise BadRequest("after must be a message sequence number (0 or more)")
    return web.json_response(await services.api_channel.messages(
        platform, request.match_info["contact"], int(raw)))


@routes.post("/api/v1/channel/messages/{message}/status")
async def report(request: web.Request) -> web.Response:
    services, platform = await _platform(request)
    await services.api_channel.report(platform, request.match_info["message"],
                                      await _body(request))
    return web.json_response({"ok": True})
