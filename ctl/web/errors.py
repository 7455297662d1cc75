"""The one place errors become HTTP responses."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from ctl.errors import CtlError

log = logging.getLogger(__name__)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CtlError as e:
        if e.status >= 500:
            log.warning("request failed: %s", e)
        body: dict[str, Any] = {"error": e.code, "message": str(e)}
        if e.reason:
            body.update(reason=e.reason, params=e.params)
        return web.json_response(body, status=e.status)
