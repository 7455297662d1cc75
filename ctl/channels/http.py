"""Agent API for conversations (thin: the channels service decides and stores).

GET  /api/v1/contacts/{id}/messages[?after=SEQ]  the contact's messages
GET  /api/v1/contacts/{id}/history               the customer's messages on every channel
POST /api/v1/contacts/{id}/messages {"text"}     reply on the contact's channel
POST /api/v1/contacts/{id}/typing {"on"}         the agent types (web chat shows it)
POST /api/v1/messages                            a system hands in a customer's message
GET  /api/v1/attachments/{sha256}                an attachment's bytes
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ctl.channels.contract import Inbound
from ctl.errors import BadRequest
from ctl.routing.http import _body, _field, _who

routes = web.RouteTableDef()


@routes.get("/api/v1/contacts/{contact}/messages")
async def messages(request: web.Request) -> web.Response:
    services, who = await _who(request)
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        raise BadRequest("after must be a message sequence number") from None
    found = await services.channels.messages(who, request.match_info["contact"], after)
    return web.json_response({"messages": found})


@routes.get("/api/v1/contacts/{contact}/history")
async def history(request: web.Request) -> web.Response:
    services, who = await _who(request)
    found = await services.channels.history(who, request.match_info["contact"])
    return web.json_response({"messages": found})


@routes.post("/api/v1/contacts/{contact}/messages")
async def reply(request: web.Request) -> web.Response:
    services, who = await _who(request)
    text = _field(await _body(request), "text")
    sent = await services.channels.reply(who, request.match_info["contact"], text)
    return web.json_response(sent, status=201)


@routes.post("/api/v1/contacts/{contact}/typing")
async def typing(request: web.Request) -> web.Response:
    """{"on": true|false}: the customer sees the agent typing (web chat)."""
    services, who = await _who(request)
    on = _field(await _body(request), "on", bool)
    await services.channels.typing(who, request.match_info["contact"], on)
    return web.json_response({"ok": True})


@routes.post("/api/v1/messages")
async def inbound(request: web.Request) -> web.Response:
    """The API channel for messages: {"channel", "customer": {"kind", "value", "name"},
    "address", "text", "subject", "external_id", "thread", "queue"}."""
    services, _ = await _who(request, "supervisor")
    body = await _body(request)
    customer = body.get("customer")
    if not isinstance(customer, dict):
        raise BadRequest('"customer" must be {"kind": ..., "value": ...}')
    kind, value = _field(customer, "kind"), _field(customer, "value")
    got = await services.channels.receive(Inbound(
        channel=str(body.get("channel") or "api"), identity=(kind, value),
        address=str(body.get("address") or value), text=_field(body, "text"),
        name=_opt(customer, "name"), subject=_opt(body, "subject"),
        external_id=_opt(body, "external_id"), thread=_opt(body, "thread"),
        queue=_opt(body, "queue")))
    return web.json_response({"message": got.message_id, "contact": got.contact_id,
                              "customer": got.customer_id, "seq": got.seq,
                              "opened": got.opened, "duplicate": got.duplicate},
                             status=200 if got.duplicate else 201)


@routes.get("/api/v1/attachments/{sha}")
async def attachment(request: web.Request) -> web.FileResponse:
    services, _ = await _who(request)
    path = services.channels.attachments.path(request.match_info["sha"])
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream",
                                           "X-Content-Type-Options": "nosniff"})


def _opt(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"field {name!r} must be a string")
    return value
