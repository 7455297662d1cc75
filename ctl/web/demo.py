"""The demo's order system, which the order-status flow calls with its `http` verb: a
stand-in for a company's own order API (the same order number always answers the same),
and the demo CRM the customer 360 can look customers up in (`crm.url`)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from ctl.errors import BadRequest

routes = web.RouteTableDef()
_STATES = [("processing", "处理中"), ("shipped", "已发货"), ("out for delivery", "派送中")]


def _hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def _order(number: str) -> dict[str, Any]:
    h = _hash(number)
    status, status_zh = _STATES[h % len(_STATES)]
    eta: date = datetime.now(UTC).date() + timedelta(days=1 + h % 5)
    return {"number": number, "status": status, "status_zh": status_zh,
            "eta": eta.strftime("%B %d").replace(" 0", " ")}


@routes.get("/demo/orders/{number:[0-9]+}")
async def order(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    if number.endswith("0"):  # the demo's way to show an unknown order
        return web.json_response({"error": f"no order {number}"}, status=404)
    return web.json_response(_order(number))


@routes.get("/demo/crm/customers")
async def crm_customer(request: web.Request) -> web.Response:
    """?phone= or ?email=: the customer's account and recent orders (made up, stable)."""
    key = request.query.get("phone") or request.query.get("email")
    if not key:
        raise BadRequest("give phone or email")
    h = _hash(key)
    numbers = [str(100001 + (h >> (8 * i)) % 899998) for i in range(1 + h % 3)]
    orders = [{**_order(n), "total": f"{(_hash(n) % 50000) / 100:.2f}"}
              for n in numbers if not n.endswith("0")]
    return web.json_response({"account": f"A{h % 100000:05d}",
                              "segment": ("standard", "gold", "platinum")[h % 3],
                              "orders": orders})
