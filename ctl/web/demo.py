"""The demo's order system, which the order-status flow calls with its `http` verb: a
stand-in for a company's own order API (the same order number always answers the same)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

from aiohttp import web

routes = web.RouteTableDef()
_STATES = [("processing", "处理中"), ("shipped", "已发货"), ("out for delivery", "派送中")]


@routes.get("/demo/orders/{number:[0-9]+}")
async def order(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    if number.endswith("0"):  # the demo's way to show an unknown order
        return web.json_response({"error": f"no order {number}"}, status=404)
    h = int(hashlib.sha256(number.encode()).hexdigest(), 16)
    status, status_zh = _STATES[h % len(_STATES)]
    eta: date = datetime.now(UTC).date() + timedelta(days=1 + h % 5)
    return web.json_response({"number": number, "status": status, "status_zh": status_zh,
                              "eta": eta.strftime("%B %d").replace(" 0", " ")})
