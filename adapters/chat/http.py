"""The web chat's HTTP side: the widget script, a demo page, the visitor's websocket,
file upload and the offline form. Thin: ChatService and ChatSocket do the work."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from adapters.chat.socket import ChatSocket
from ctl.channels.contract import Attachment, TooLarge
from ctl.desk.headers import CHAT_POLICY, page_headers
from ctl.errors import BadRequest
from ctl.services import SERVICES

routes = web.RouteTableDef()
_STATIC = Path(__file__).parent / "static"


@routes.get("/chat/widget.js")
async def widget(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_STATIC / "widget.js", headers={
        "Content-Type": "application/javascript; charset=utf-8",
        "Cache-Control": "public, max-age=300"})


@routes.get("/chat/")
async def demo(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_STATIC / "demo.html", headers={
        **page_headers(CHAT_POLICY), "Content-Type": "text/html; charset=utf-8"})


@routes.get("/chat/ws")
async def socket(request: web.Request) -> web.WebSocketResponse:
    services = request.app[SERVICES]
    settings = services.settings.channels
    # An oversized frame closes the socket (1009); the widget reconnects and resumes.
    ws = web.WebSocketResponse(heartbeat=25, max_msg_size=settings.chat.max_frame_bytes)
    await ws.prepare(request)
    await ChatSocket(services.chat, services.notifier, ws, settings.queue_for("chat")).run()
    await ws.close()
    return ws


@routes.get("/chat/status")
async def status(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    queue = services.settings.channels.queue_for("chat")
    return web.json_response({"online": await services.chat.online(queue)})


@routes.post("/chat/upload")
async def upload(request: web.Request) -> web.Response:
    """Raw file body; headers X-Chat-Token and Content-Type, query ?name=&cid=."""
    services = request.app[SERVICES]
    visitor = services.chat.tokens.read(request.headers.get("X-Chat-Token", ""))
    store = services.channels.attachments
    limit = store.max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the file is {request.content_length} bytes; the limit is {limit}")
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"the file is larger than the limit of {limit} bytes")
    att = Attachment(request.query.get("name") or "file", request.content_type, data)
    store.check(att)
    got = await services.chat.say(visitor, request.query.get("cid", ""), "", (att,))
    return web.json_response({"contact": got.contact_id, "seq": got.seq}, status=201)


@routes.get("/chat/files/{sha}")
async def file(request: web.Request) -> web.FileResponse:
    """A file of the visitor's chat (header X-Chat-Token), e.g. one the agent sent."""
    chat = request.app[SERVICES].chat
    visitor = chat.tokens.read(request.headers.get("X-Chat-Token", ""))
    path = await chat.file(visitor, request.match_info["sha"])
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream",
                                           "X-Content-Type-Options": "nosniff"})


@routes.post("/chat/offline")
async def offline(request: web.Request) -> web.Response:
    """Leave a message while nobody is online: {"name", "email", "text"}."""
    try:
        form = await request.json()
    except ValueError:
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(form, dict):
        raise BadRequest("the request body must be a JSON object")
    got = await request.app[SERVICES].chat.offline(form)
    return web.json_response({"contact": got.contact_id}, status=201)


