"""Weibo's push URL: GET /channels/weibo (verification), POST (messages)."""

from __future__ import annotations

from aiohttp import web

from adapters.webhooks import read_body
from adapters.weibo.callback import WeiboPush
from ctl.errors import NotFound
from ctl.services import SERVICES

routes = web.RouteTableDef()


def _hook(request: web.Request) -> WeiboPush:
    hook: WeiboPush | None = request.app[SERVICES].weibo_push
    if hook is None:
        raise NotFound("Weibo is not configured (channels.weibo.app_secret)")
    return hook


@routes.get("/channels/weibo")
async def verify(request: web.Request) -> web.Response:
    return web.Response(text=_hook(request).verify_url(request.query))


@routes.post("/channels/weibo")
async def message(request: web.Request) -> web.Response:
    hook = _hook(request)
    body = await read_body(request)
    return web.Response(text=await hook.handle(request.query, body))
