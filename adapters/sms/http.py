"""The gateway's webhooks: POST /channels/sms/inbound and /channels/sms/status."""

from __future__ import annotations

from aiohttp import web

from adapters.webhooks import read_body
from ctl.errors import NotFound
from ctl.services import SERVICES

routes = web.RouteTableDef()


@routes.post("/channels/sms/{kind:inbound|status}")
async def webhook(request: web.Request) -> web.Response:
    hook = request.app[SERVICES].sms_webhook
    if hook is None:
        raise NotFound("SMS is not configured (channels.sms.secret)")
    body = await read_body(request)
    hook.verify(request.headers.get("X-Timestamp"), request.headers.get("X-Signature"), body)
    if request.match_info["kind"] == "status":
        known = await hook.status(body)
        return web.json_response({"ok": True, "known": known})
    got = await hook.inbound(body)
    return web.json_response({"ok": True, "message": got.message_id, "contact": got.contact_id,
                              "duplicate": got.duplicate}, status=200 if got.duplicate else 201)
