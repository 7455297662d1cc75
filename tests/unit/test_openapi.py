"""The published OpenAPI document describes every route of the APIs it covers."""

from __future__ import annotations

from aiohttp import web

from adapters.api import http as api_channel
from ctl.web.openapi import document


def test_every_api_channel_route_is_described() -> None:
    paths = document()["paths"]
    for route in api_channel.routes:
        assert isinstance(route, web.RouteDef)
        assert route.method.lower() in paths[route.path], (route.method, route.path)


def test_one_document_with_both_apis() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert "/api/v1/tickets" in doc["paths"] and "/api/v1/channel/contacts" in doc["paths"]
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey"}
