"""Agent API for conversations (thin: the channels service decides and stores).

GET  /api/v1/me/conversations[?messages=1&after=C:SEQ,...]  the contacts the agent holds
     (desk tabs), with their messages after what the panel shows
GET  /api/v1/contacts/{id}/messages[?after=SEQ]  the contact's messages
GET  /api/v1/contacts/{id}/history               the customer's messages on every channel
POST /api/v1/contacts/{id}/messages {"text", "subject"?}  reply on the contact's channel;
     multipart/form-data (text, subject, files) for a reply with attachments
POST /api/v1/contacts/{id}/typing {"on"}         the agent types (web chat shows it)
POST /api/v1/contacts/{id}/disposition {"disposition", "notes"}  the agent's wrap-up
POST /api/v1/contacts/{id}/identities {"kind", "value"}  link a verified identity
POST /api/v1/messages                            a system hands in a customer's message
GET  /api/v1/attachments/{sha256}                an attachment's bytes
"""

from __future__ import annotations

from typing import Any

from aiohttp import BodyPartReader, web

from ctl.channels.contract import Attachment, Inbound, TooLarge
from ctl.errors import BadRequest
from ctl.routing.http import _body, _field, _who

routes = web.RouteTableDef()
_MAX_FILES = 10


@routes.get("/api/v1/me/conversations")
async def conversations(request: web.Request) -> web.Response:
    """?messages=1 adds each conversation's messages; &after=CONTACT:SEQ,... only those
    after what the panel already shows."""
    services, who = await _who(request)
    after = _after(request.query.get("after", "")) \
        if request.query.get("messages") in ("1", "true") else None
    return web.json_response({"conversations": await services.channels.conversations(
        who, after)})


def _after(raw: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in filter(None, raw.split(",")):
        contact, _, seq = part.partition(":")
        if not contact or not seq.isdigit():
            raise BadRequest(f"after: {part!r} is not CONTACT:SEQ")
        out[contact] = int(seq)
    return out


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
    if request.content_type == "multipart/form-data":
        text, subject, files = await _form(request, services.channels.attachments.max_bytes)
    else:
        body = await _body(request)
        text, subject, files = _field(body, "text"), _opt(body, "subject"), ()
    sent = await services.channels.reply(who, request.match_info["contact"], text, files,
                                         subject=subject)
    return web.json_response(sent, status=201)


@routes.post("/api/v1/contacts/{contact}/disposition")
async def disposition(request: web.Request) -> web.Response:
    services, who = await _who(request)
    body = await _body(request)
    saved = await services.channels.disposition(
        who, request.match_info["contact"], _opt(body, "disposition") or "",
        _opt(body, "notes") or "")
    return web.json_response(saved)


async def _form(request: web.Request, limit: int
                ) -> tuple[str, str | None, tuple[Attachment, ...]]:
    """A reply as a form: fields text and subject, files of at most `limit` bytes each
    (read no further than that: a huge upload is refused without being buffered)."""
    text, subject = "", None
    files: list[Attachment] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise BadRequest("a reply form holds fields and files, not nested forms")
        if part.filename is None:
            value = (await part.read(decode=True))[:100_000].decode("utf-8", "replace")
            if part.name == "text":
                text = value
            elif part.name == "subject":
                subject = value.strip() or None
            continue
        if len(files) == _MAX_FILES:
            raise BadRequest(f"at most {_MAX_FILES} files in one reply",
                             reason="too_many_files", params={"max": _MAX_FILES})
        data = bytearray()
        while chunk := await part.read_chunk():
            data += chunk
            if len(data) > limit:
                raise TooLarge(f"attachment {part.filename!r} is larger than the limit of "
                               f"{limit} bytes", reason="attachment_too_large",
                               params={"name": part.filename, "limit": limit})
        files.append(Attachment(part.filename, part.headers.get("Content-Type", ""),
                                bytes(data)))
    return text, subject, tuple(files)


@routes.post("/api/v1/contacts/{contact}/typing")
async def typing(request: web.Request) -> web.Response:
    """{"on": true|false}: the customer sees the agent typing (web chat)."""
    services, who = await _who(request)
    on = _field(await _body(request), "on", bool)
    await services.channels.typing(who, request.match_info["contact"], on)
    return web.json_response({"ok": True})


@routes.post("/api/v1/contacts/{contact}/identities")
async def link_identity(request: web.Request) -> web.Response:
    """The agent verified an identity the customer gave (a phone number...)."""
    services, who = await _who(request)
    body = await _body(request)
    linked = await services.channels.link_identity(
        who, request.match_info["contact"], _field(body, "kind"), _field(body, "value"))
    return web.json_response(linked, status=201 if linked["added"] else 200)


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
