"""The agent and supervisor API (REST and one websocket). Handlers only translate HTTP to
service calls; the routing service decides and stores.

Authentication is a bearer token from POST /api/v1/login, or the agent desktop's session
cookie (ctl/web/auth.py). Browsers cannot set headers on a websocket, so /api/v1/ws also
takes the token as its first message rather than in the URL, where it would end up in
logs; the desktop's page needs neither: its cookie goes along.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import WSMsgType, web

from ctl.agents.auth import Principal
from ctl.contacts.states import ContactState
from ctl.errors import BadRequest, CtlError, NotFound, Unauthorized
from ctl.services import SERVICES, Services
from ctl.web.auth import SESSION_COOKIE, credentials, same_origin, who

routes = web.RouteTableDef()
_who = who  # the name other capabilities' handlers import
_AUTH_TIMEOUT = 10.0


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as e:  # not JSON, or not UTF-8
        raise BadRequest(f"the request body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type = str) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        raise BadRequest(f"field {name!r} is required ({kind.__name__})")
    return value


def _ok(**data: Any) -> web.Response:
    return web.json_response({"ok": True, **data})


@routes.post("/api/v1/login")
async def login(request: web.Request) -> web.Response:
    body = await _body(request)
    token, who = await request.app[SERVICES].auth.login(_field(body, "username"),
                                                        _field(body, "password"))
    return web.json_response({"token": token, "agent_id": who.agent_id, "role": who.role})


@routes.post("/api/v1/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session; the agent goes offline (its pending offers go to others)."""
    services, who = await _who(request)
    token = credentials(request)[0]
    await services.routing.set_state(who.agent_id, "offline")
    await services.auth.logout(token)
    # This session's websockets (other tabs, on any node) end too: the session is gone.
    services.core.publish(services.auth.topic(token), {"type": "closed", "reason": "logged_out"})
    response = _ok()
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get("/api/v1/me")
async def me(request: web.Request) -> web.Response:
    services, who = await _who(request)
    return web.json_response(await services.routing.agent_status(who.agent_id))


@routes.put("/api/v1/me/state")
async def set_state(request: web.Request) -> web.Response:
    services, who = await _who(request)
    body = await _body(request)
    state, reason = _field(body, "state"), str(body.get("reason") or "")
    reasons = services.settings.desk.away_reasons
    if state == "away" and reason and reason not in reasons:
        raise BadRequest(f"away reason {reason!r} is not one of {', '.join(reasons)} "
                         "(settings: desk.away_reasons)", reason="away_reason",
                         params={"reason": reason})
    await services.routing.set_state(who.agent_id, state, reason)
    return web.json_response(await services.routing.agent_status(who.agent_id))


@routes.get("/api/v1/offers/{offer}")
async def offer(request: web.Request) -> web.Response:
    """One of the agent's pending offers, with who the customer is (the offer toast). An
    offer the agent already accepted is still found by its contact: the toast asks for
    the customer just after showing, and a quick Enter may have accepted it by then."""
    services, who = await _who(request)
    offer_id = request.match_info["offer"]
    status = await services.routing.agent_status(who.agent_id)
    found = next((o for o in status["offers"] if o["id"] == offer_id), None)
    contact_id = request.query.get("contact")
    if found is None and any(c["id"] == contact_id for c in status["contacts"]):
        found = {"id": offer_id, "contact_id": contact_id, "accepted": True}
    if found is None:
        raise NotFound(f"no pending offer {offer_id} for you",
                       hint="it was taken, declined, timed out or withdrawn",
                       reason="offer_gone")
    return web.json_response({**found, "customer":
                              await services.customers.of_contact(found["contact_id"])})


@routes.post("/api/v1/offers/{offer}/{action:accept|decline}")
async def answer_offer(request: web.Request) -> web.Response:
    services, who = await _who(request)
    offer = request.match_info["offer"]
    if request.match_info["action"] == "accept":
        await services.routing.accept(who.agent_id, offer)
    else:
        await services.routing.decline(who.agent_id, offer)
    return _ok()


@routes.post("/api/v1/contacts/{contact}/{action:complete|wrapup-done}")
async def finish_contact(request: web.Request) -> web.Response:
    services, who = await _who(request)
    contact = request.match_info["contact"]
    if request.match_info["action"] == "complete":
        await services.routing.complete(who.agent_id, contact)
    else:
        await services.routing.end_wrapup(who.agent_id, contact)
    return _ok()


@routes.post("/api/v1/contacts/{contact}/transfer")
async def transfer_contact(request: web.Request) -> web.Response:
    """To a queue ({"queue": name}), to an agent ({"agent": username}), or both (that agent
    first, then the queue)."""
    services, who = await _who(request)
    body = await _body(request)
    queue, username = body.get("queue"), body.get("agent")
    if not isinstance(queue, str | None) or not isinstance(username, str | None) or \
            not (queue or username):
        raise BadRequest('transfer needs "queue" or "agent" (a username)',
                         reason="transfer_target")
    target = (await services.agents.get(username)).id if username else None
    await services.routing.transfer(who.agent_id, request.match_info["contact"], queue, target)
    return _ok()


@routes.post("/api/v1/contacts/{contact}/consult")
async def consult(request: web.Request) -> web.Response:
    """Warm transfer: {"agent": username} to start; then .../consult/complete or /cancel."""
    services, who = await _who(request)
    username = _field(await _body(request), "agent")
    target = (await services.agents.get(username)).id
    await services.routing.consult(who.agent_id, request.match_info["contact"], target)
    return _ok()


@routes.post("/api/v1/contacts/{contact}/consult/{action:complete|cancel}")
async def end_consult(request: web.Request) -> web.Response:
    services, who = await _who(request)
    await services.routing.end_consult(who.agent_id, request.match_info["contact"],
                                       request.match_info["action"] == "complete")
    return _ok()


@routes.post("/api/v1/contacts")
async def create_contact(request: web.Request) -> web.Response:
    """The API channel: a system (or a supervisor) hands in a contact to be routed."""
    services, _ = await _who(request, "supervisor")
    body = await _body(request)
    contact_id = await services.intake(
        channel=str(body.get("channel") or "api"), queue=_field(body, "queue"),
        priority=int(body.get("priority") or 0), attributes=body.get("attributes") or {},
        identity=body.get("customer"))
    return web.json_response({"id": contact_id}, status=201)


@routes.post("/api/v1/contacts/{contact}/abandon")
async def abandon_contact(request: web.Request) -> web.Response:
    """The API channel's customer left before being served."""
    services, _ = await _who(request, "supervisor")
    await services.routing.end(request.match_info["contact"], ContactState.ABANDONED,
                               "customer_left")
    return _ok()


@routes.get("/api/v1/queues")
async def queues(request: web.Request) -> web.Response:
    services, _ = await _who(request, "supervisor")
    return web.json_response({"queues": await services.routing.queues()})


@routes.get("/api/v1/agents")
async def agents(request: web.Request) -> web.Response:
    services, _ = await _who(request, "supervisor")
    return web.json_response({"agents": await services.routing.agents()})


@routes.put("/api/v1/agents/{agent}/state")
async def set_agent_state(request: web.Request) -> web.Response:
    """A supervisor sets an agent away or offline (one who left without logging out)."""
    services, _ = await _who(request, "supervisor")
    body = await _body(request)
    agent = request.match_info["agent"]
    await services.routing.set_state(agent, _field(body, "state"), str(body.get("reason") or ""))
    return web.json_response(await services.routing.agent_status(agent))


@routes.get("/api/v1/ws")
async def events(request: web.Request) -> web.WebSocketResponse:
    """Pushes for the logged-in agent (and, for supervisors, every routing event)."""
    services = request.app[SERVICES]
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    try:
        who, token = await _ws_login(services, request, ws)
    except CtlError as e:
        await ws.send_json({"type": "error", "error": e.code, "message": str(e)})
        await ws.close()
        return ws
    topics = [f"agent:{who.agent_id}", services.auth.topic(token)]
    if who.role != "agent":
        topics.append("supervisor")
    with contextlib.ExitStack() as stack:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        queues = [stack.enter_context(services.notifier.subscribe(t)) for t in topics]
        pumps = [asyncio.create_task(_pump(q, inbox)) for q in queues]
        try:
            await ws.send_json({"type": "hello", **await services.routing.agent_status(
                who.agent_id)})
            # The reader says when the page went: a task and a wait for each push cost
            # more than writing the push.
            reader = asyncio.create_task(_drain(ws))
            reader.add_done_callback(lambda _: inbox.put_nowait(_GONE))
            while (message := await inbox.get()) is not _GONE:
                await ws.send_json(message)
                if message.get("type") == "closed":
                    break
            reader.cancel()
        except ConnectionResetError:  # the page went away while a push was written to it
            pass
        finally:
            for task in pumps:
                task.cancel()
    await ws.close()
    return ws


async def _ws_login(services: Services, request: web.Request,
                    ws: web.WebSocketResponse) -> tuple[Principal, str]:
    token, by_cookie = credentials(request)
    if by_cookie:
        same_origin(request)  # another site's page would send this cookie along too
    if not token:
        msg = await ws.receive(timeout=_AUTH_TIMEOUT)
        if msg.type is not WSMsgType.TEXT:
            raise Unauthorized("send {\"token\": ...} first")
        try:
            token = str(json.loads(msg.data)["token"])
        except (ValueError, KeyError, TypeError):
            raise Unauthorized("send {\"token\": ...} first") from None
    return await services.auth.check(token), token


_GONE: dict[str, Any] = {}


async def _pump(source: asyncio.Queue[dict[str, Any]],
                sink: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        sink.put_nowait(await source.get())


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read until the client goes (its messages carry nothing: actions are REST calls)."""
    async for _ in ws:
        pass
