"""The supervisor API: the live overview, listening in on calls, taking over contacts.
Handlers only translate HTTP; the supervision and routing services decide."""

from __future__ import annotations

from aiohttp import web

from ctl.errors import BadRequest
from ctl.routing.http import _body, _ok
from ctl.web.auth import who as _who

routes = web.RouteTableDef()


@routes.get("/api/v1/supervision")
async def overview(request: web.Request) -> web.Response:
    """Queues with their live figures, agents with the time in their state, active
    alerts and monitoring sessions."""
    services, _ = await _who(request, "supervisor")
    return web.json_response(await services.supervision.overview())


@routes.post("/api/v1/contacts/{contact}/monitor")
async def monitor(request: web.Request) -> web.Response:
    """{"mode": "listen" | "whisper" | "barge"}: rings the supervisor's phone, or switches
    the mode of the session already running."""
    services, who = await _who(request, "supervisor")
    mode = (await _body(request)).get("mode", "listen")
    if not isinstance(mode, str):
        raise BadRequest('"mode" must be listen, whisper or barge')
    session = await services.supervision.monitor(who.agent_id, request.match_info["contact"],
                                                 mode)
    return web.json_response({"monitor": session})


@routes.delete("/api/v1/contacts/{contact}/monitor")
async def unmonitor(request: web.Request) -> web.Response:
    services, who = await _who(request, "supervisor")
    await services.supervision.unmonitor(who.agent_id, request.match_info["contact"])
    return _ok()


@routes.post("/api/v1/contacts/{contact}/takeover")
async def take_over(request: web.Request) -> web.Response:
    """The supervisor takes the contact from its agent (a chat): it is theirs now."""
    services, who = await _who(request, "supervisor")
    await services.routing.take_over(who.agent_id, request.match_info["contact"])
    return _ok()
