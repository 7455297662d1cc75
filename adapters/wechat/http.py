"""WeChat's callback URL: GET /channels/wechat (verification), POST (messages)."""

from __future__ import annotations

from aiohttp import web

from adapters.webhooks import read_body
from adapters.wechat.callback import WechatCallback
from ctl.errors import NotFound
from ctl.services import SERVICES

routes = web.RouteTableDef()


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
    body = await read_body(request)
    return web.Response(text=await hook.handle(request.query, body))
