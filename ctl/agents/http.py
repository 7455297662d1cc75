"""The logged-in agent's own phone account (the desk's softphone registers with it)."""

from __future__ import annotations

from aiohttp import web

from ctl.web.auth import who as _who

routes = web.RouteTableDef()


@routes.get("/api/v1/me/phone")
async def my_phone(request: web.Request) -> web.Response:
    services, who = await _who(request)
    account = await services.phones.account(who.agent_id, ready=services.ami.connected)
    # A credential: never cached by the browser or a proxy.
    return web.json_response(account, headers={"Cache-Control": "no-store"})
