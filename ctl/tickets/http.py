"""The tickets API under /api/v1/tickets. Handlers only translate HTTP to TicketService
calls; any logged-in agent may work on tickets, as agents work on contacts.

A change may carry the version the client read ("version" in the body, or an If-Match
header): if the ticket changed since, the answer is 409 and nothing is written.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ctl.errors import BadRequest
from ctl.routing.http import _body, _field, _who
from ctl.tickets.search import Filters

routes = web.RouteTableDef()
_T = "/api/v1/tickets/{ticket}"


def _version(request: web.Request, body: dict[str, Any]) -> int | None:
    value = body.pop("version", None)
    header = request.headers.get("If-Match", "").strip('"W/ ')
    if value is None and header:
        value = int(header) if header.isdigit() else header
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise BadRequest("version must be the whole number the ticket was read at")
    return value


def _ticket(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data.json(), status=status, headers={"ETag": f'"{data.version}"'})


@routes.post("/api/v1/tickets")
async def create(request: web.Request) -> web.Response:
    services, who = await _who(request)
    body = await _body(request)
    customer_id = body.get("customer_id")
    identity = body.get("customer")
    if isinstance(identity, dict):
        kind, value = identity.get("kind"), identity.get("value")
        if not isinstance(kind, str) or not isinstance(value, str):
            raise BadRequest('customer must be {"kind": ..., "value": ...}')
        try:
            customer_id = await services.customers.identify(kind, value, identity.get("name"))
        except ValueError as e:  # an unknown kind, an unusable address
            raise BadRequest(f"customer: {e}") from None
    ticket = await services.tickets.create(
        subject=_field(body, "subject"), description=str(body.get("description") or ""),
        customer_id=customer_id, contact_id=body.get("contact_id"),
        channel=body.get("channel"), priority=str(body.get("priority") or "normal"),
        department=body.get("department"), category=body.get("category"),
        attachments=body.get("attachments") or (), tags=body.get("tags") or (),
        fields=body.get("fields") or {}, source=str(body.get("source") or "api"),
        actor=who.username, notify=bool(body.get("notify", True)))
    return _ticket(ticket, 201)


@routes.get("/api/v1/tickets")
async def search(request: web.Request) -> web.Response:
    services, _ = await _who(request)
    found = await services.tickets.search(Filters.from_query(request.query))
    return web.json_response({"tickets": [t.json() for t in found]})


@routes.get(_T)
async def get(request: web.Request) -> web.Response:
    services, _ = await _who(request)
    return _ticket(await services.tickets.get(request.match_info["ticket"]))


@routes.patch(_T)
async def update(request: web.Request) -> web.Response:
    services, who = await _who(request)
    body = await _body(request)
    version = _version(request, body)
    return _ticket(await services.tickets.update(request.match_info["ticket"], body,
                                                 version=version, actor=who.username))


@routes.post(_T + "/status")
async def move(request: web.Request) -> web.Response:
    services, who = await _who(request)
    body = await _body(request)
    return _ticket(await services.tickets.move(
        request.match_info["ticket"], _field(body, "status"),
        reason=str(body.get("reason") or ""), version=_version(request, body),
        actor=who.username))


@routes.post(_T + "/{kind:notes|replies}")
async def note(request: web.Request) -> web.Response:
    """Internal notes (notes) or customer-visible replies (replies, sent to the customer)."""
    services, who = await _who(request)
    body = await _body(request)
    return _ticket(await services.tickets.note(
        request.match_info["ticket"], _field(body, "body"),
        public=request.match_info["kind"] == "replies", actor=who.username,
        version=_version(request, body)), 201)


@routes.post(_T + "/customer-replies")
async def customer_reply(request: web.Request) -> web.Response:
    """A channel (or a supervisor) records what the customer wrote back."""
    services, _ = await _who(request, "supervisor")
    body = await _body(request)
    return _ticket(await services.tickets.customer_reply(
        request.match_info["ticket"], _field(body, "body"), contact_id=body.get("contact_id")),
        201)


@routes.post(_T + "/tags")
async def tag(request: web.Request) -> web.Response:
    services, who = await _who(request)
    body = await _body(request)
    return _ticket(await services.tickets.tag(
        request.match_info["ticket"], add=body.get("add") or [],
        remove=body.get("remove") or [], version=_version(request, body),
        actor=who.username))


@routes.patch(_T + "/fields")
async def fields(request: web.Request) -> web.Response:
    services, who = await _who(request)
    body = await _body(request)
    version = _version(request, body)
    return _ticket(await services.tickets.set_fields(
        request.match_info["ticket"], body, version=version, actor=who.username))


@routes.post(_T + "/contacts")
async def link(request: web.Request) -> web.Response:
    services, who = await _who(request)
    body = await _body(request)
    return _ticket(await services.tickets.link_contact(
        request.match_info["ticket"], _field(body, "contact_id"), actor=who.username))


@routes.get(_T + "/history")
async def history(request: web.Request) -> web.Response:
    services, _ = await _who(request)
    public = request.query.get("public") in ("1", "true")
    return web.json_response({"events": await services.tickets.history(
        request.match_info["ticket"], public_only=public)})


@routes.post(_T + "/transfer")
async def transfer(request: web.Request) -> web.Response:
    """To another department ({"department"}): the ticket waits in that department's queue."""
    services, who = await _who(request)
    body = await _body(request)
    return _ticket(await services.tickets.transfer(
        request.match_info["ticket"], _field(body, "department"),
        reason=str(body.get("reason") or ""), version=_version(request, body),
        actor=who.username))
