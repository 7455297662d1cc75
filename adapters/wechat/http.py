"""WeChat's callback URL: GET /channels/wechat (verification), POST (messages)."""

from __future__ import annotations

from aiohttp import web

from adapters.wechat.callback import WechatCallback
from ctl.errors import NotFound
from ctl.services import SERVICES

routes = web.RouteTableDef()
_MAX_BODY = 64 * 1024


def _hook(request: web.Request) -> WechatCallback:
    hook: WechatCallback | None = request.app[SERVICES].wechat_callback
    if hook is None:
        raise NotFound("WeChat is not configured (channels.wechat.token)")
    return hook


@routes.get("/channels/wechat")
async def verify(request: web.Request) -> web.Response:
    return web.Response(text=_hook(request).verify_url(request.query))


@routes.post("/channels/wechat")
async def message(request: web.Request) -> web.Response:
    hook = _hook(request)
    body = await request.content.read(_MAX_BODY + 1)
    if len(body) > _MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=_MAX_BODY, actual_size=len(body))
    return web.Response(text=await hook.handle(request.query, body))
