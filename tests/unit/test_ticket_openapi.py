"""The tickets API's OpenAPI document describes every route, and real tickets fit it."""

from __future__ import annotations

from datetime import UTC, datetime

import jsonschema
from aiohttp import web

from ctl.tickets import http
from ctl.tickets.model import TicketView
from ctl.tickets.openapi import document


def test_every_route_is_described() -> None:
    paths = document()["paths"]
    for route in http.routes:
        assert isinstance(route, web.RouteDef)
        if route.path == "/api/v1/openapi/tickets.json":
            continue
        path = route.path.replace("{kind:notes|replies}", "notes")
        assert route.method.lower() in paths[path], (route.method, route.path)
        if "{kind:" in route.path:
            assert route.method.lower() in paths[path.replace("notes", "replies")]


def test_a_ticket_fits_its_schema() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    t = TicketView(
        id="a" * 32, number=7, subject="s", description="", status="open", priority="high",
        category=None, department="tech", assignee_id=None, customer_id="c", channel="email",
        source="api", task_contact_id=None, tags=["x"], fields={"p": 1}, attachments=[],
        notify=True, created_at=now, updated_at=now, first_response_at=None,
        resolved_at=None, closed_at=now, response_due=None, resolution_due=now,
        sla_state="breached", version=3, contact_ids=["k"])
    schema = document()["components"]["schemas"]["Ticket"]
    jsonschema.validate(t.json(), schema)
    bad = {**t.json(), "status": "done"}
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError as e:
        assert "done" in str(e.message)
    else:
        raise AssertionError("an unknown status passed the schema")
