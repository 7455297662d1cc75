"""One OpenAPI 3.1 document for ctl's public API: the tickets API and the API channel.

GET /api/v1/openapi.json (and its first address, /api/v1/openapi/tickets.json) needs no
login: it holds no data.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.api import openapi as api_channel
from ctl.tickets import openapi as tickets

routes = web.RouteTableDef()


def document() -> dict[str, Any]:
    doc = tickets.document()
    doc["info"] = {"title": "ctl API", "version": "1"}
    doc["paths"] = {**doc["paths"], **api_channel.PATHS}
    parts = doc["components"]
    parts["schemas"] = {**parts["schemas"], **api_channel.SCHEMAS}
    parts["securitySchemes"] = {**parts["securitySchemes"], **api_channel.SECURITY}
    error = parts["responses"]["Error"]["content"]["application/json"]["schema"]
    error["required"] = ["error", "message"]
    # Some refusals also carry a stable name and the values they mention (ctl/errors.py).
    error["properties"].update(reason={"type": "string"}, params={"type": "object"})
    return doc


@routes.get("/api/v1/openapi.json")
@routes.get("/api/v1/openapi/tickets.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
