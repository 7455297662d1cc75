"""Douyin's webhook URL: POST /channels/douyin (the URL check and every event)."""

from __future__ import annotations

from aiohttp import web

from adapters.webhooks import read_body
from ctl.errors import NotFound
from ctl.services import SERVICES

routes = web.RouteTableDef()


@routes.post("/channels/douyin")
async def event(request: web.Request) -> web.Response:
    hook = request.app[SERVICES].douyin_webhook
    if hook is None:
        raise NotFound("Douyin is not configured (channels.douyin.client_secret)")
    body = await read_body(request)
    return web.json_response(await hook.handle(request.headers.get("X-Douyin-Signature"),
                                               body))
