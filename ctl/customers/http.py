"""The customer 360 API (thin: CustomerRecords decides and stores).

GET    /api/v1/customers?q=                      search by name, phone or email
GET    /api/v1/customers/{id}                    profile, identities, tags, tickets, merges
PATCH  /api/v1/customers/{id}  {"name", "language"}
GET    /api/v1/customers/{id}/timeline[?cursor=&limit=]   contacts, tickets, messages
GET    /api/v1/customers/{id}/crm                the CRM hook's answer (or its error)
PUT    /api/v1/customers/{id}/tags {"tags"}      set; POST {"tags"} adds; DELETE {"tags"} removes
POST   /api/v1/customers/{id}/merge {"from"}     merge that customer into this one (supervisor)
POST   /api/v1/customers/merges/{merge}/undo     unmerge (supervisor)
GET    /api/v1/contacts/{id}/recordings/{name}   a recording's audio (HTTP Range for seeking)
"""

from __future__ import annotations

from aiohttp import web

from ctl.errors import BadRequest
from ctl.routing.http import _body, _field
from ctl.web.auth import who as _who

routes = web.RouteTableDef()
_PAGE = 20


@routes.get("/api/v1/customers")
async def search(request: web.Request) -> web.Response:
    services, _ = await _who(request)
    found = await services.customer_records.search(request.query.get("q", ""))
    return web.json_response({"customers": found})


@routes.get("/api/v1/customers/{customer}")
async def get(request: web.Request) -> web.Response:
    services, _ = await _who(request)
    return web.json_response(await services.customer_records.get(
        request.match_info["customer"]))


@routes.patch("/api/v1/customers/{customer}")
async def update(request: web.Request) -> web.Response:
    services, who = await _who(request)
    return web.json_response(await services.customer_records.update(
        who, request.match_info["customer"], await _body(request)))


@routes.get("/api/v1/customers/{customer}/timeline")
async def timeline(request: web.Request) -> web.Response:
    services, _ = await _who(request)
    raw = request.query.get("limit", str(_PAGE))
    if not raw.isdigit():
        raise BadRequest(f"limit must be a whole number, not {raw!r}")
    return web.json_response(await services.customer_records.timeline(
        request.match_info["customer"], request.query.get("cursor") or None, int(raw)))


@routes.get("/api/v1/customers/{customer}/crm")
async def crm(request: web.Request) -> web.Response:
    services, _ = await _who(request)
    return web.json_response(await services.customer_records.crm_lookup(
        request.match_info["customer"]))


@routes.route("*", "/api/v1/customers/{customer}/tags")
async def tags(request: web.Request) -> web.Response:
    services, who = await _who(request)
    records, customer = services.customer_records, request.match_info["customer"]
    if request.method == "GET":
        return web.json_response({"tags": (await records.get(customer))["tags"]})
    given = _field(await _body(request), "tags", list)
    if request.method == "PUT":
        now = await records.tag(who, customer, add=given, replace=True)
    elif request.method == "POST":
        now = await records.tag(who, customer, add=given)
    elif request.method == "DELETE":
        now = await records.tag(who, customer, remove=given)
    else:
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "PUT", "POST", "DELETE"])
    return web.json_response({"tags": now})


@routes.post("/api/v1/customers/{customer}/merge")
async def merge(request: web.Request) -> web.Response:
    services, who = await _who(request, "supervisor")
    other = _field(await _body(request), "from")
    done = await services.customer_records.merge(who, request.match_info["customer"], other)
    return web.json_response(done, status=201)


@routes.post("/api/v1/customers/merges/{merge}/undo")
async def unmerge(request: web.Request) -> web.Response:
    services, who = await _who(request, "supervisor")
    return web.json_response(await services.customer_records.unmerge(
        who, request.match_info["merge"]))


@routes.get("/api/v1/contacts/{contact}/recordings/{name}")
async def recording(request: web.Request) -> web.FileResponse:
    services, _ = await _who(request)
    path = await services.customer_records.recording(request.match_info["contact"],
                                                     request.match_info["name"])
    # FileResponse answers Range requests (206): the desk's <audio> element seeks.
    return web.FileResponse(path, headers={"Content-Type": "audio/wav",
                                           "Cache-Control": "private, max-age=3600",
                                           "X-Content-Type-Options": "nosniff"})
