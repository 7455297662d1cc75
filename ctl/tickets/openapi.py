"""The tickets API described as OpenAPI 3.1 (served at /api/v1/openapi/tickets.json).

The ticket schema is derived from TicketView, so a new field cannot be forgotten here; a
test checks that every route of ctl/tickets/http.py is described.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from typing import Any

from ctl.tickets.model import EDITABLE, PRIORITIES, TicketView
from ctl.tickets.search import SLA_STATES
from ctl.tickets.states import TicketStatus

_T = "/api/v1/tickets/{ticket}"
_JSON = "application/json"


def _type(hint: Any) -> dict[str, Any]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = _type(next(a for a in args if a is not type(None)))
        return {**inner, "type": [inner["type"], "null"]}
    if hint is datetime:
        return {"type": "string", "format": "date-time"}
    origin = typing.get_origin(hint) or hint
    return {str: {"type": "string"}, int: {"type": "integer"}, bool: {"type": "boolean"},
            list: {"type": "array"}, dict: {"type": "object"}}[origin]


def _ticket_schema() -> dict[str, Any]:
    hints = typing.get_type_hints(TicketView)
    props = {f.name: _type(hints[f.name]) for f in dataclasses.fields(TicketView)}
    props["status"]["enum"] = [s.value for s in TicketStatus]
    props["priority"]["enum"] = list(PRIORITIES)
    props["sla_state"]["enum"] = list(SLA_STATES)
    return {"type": "object", "properties": props, "required": sorted(props)}


def _body(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema = {"type": "object", "properties": {**props, "version": {"type": "integer"}},
              "required": list(required)}
    return {"required": True, "content": {_JSON: {"schema": schema}}}


def _op(summary: str, body: dict[str, Any] | None = None, status: str = "200",
        result: str = "Ticket") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary, "security": [{"bearer": []}],
        "responses": {status: {"description": "OK", "content": {_JSON: {"schema": {
            "$ref": f"#/components/schemas/{result}"}}}},
            **{code: {"$ref": "#/components/responses/Error"}
               for code in ("400", "401", "404", "409")}}}
    if body is not None:
        op["requestBody"] = body
    return op


_S = {"type": "string"}
_TEXT = {"body": _S}
_FILTERS = [
    ("status", "comma-separated statuses"), ("department", ""), ("sla_state", ""),
    ("customer", "customer id"), ("assignee_id", ""), ("tag", ""), ("q", "text in subject "
     "or description"), ("limit", "1-500, default 50"), ("before", "a ticket number: the "
     "next page"),
]


def _paths() -> dict[str, Any]:
    editable = {name: ({"enum": list(PRIORITIES)} if name == "priority" else
                       {"type": "boolean"} if name == "notify" else _S) for name in EDITABLE}
    create = {**editable, "customer": {"type": "object", "properties": {
        "kind": _S, "value": _S, "name": _S}}, "customer_id": _S, "contact_id": _S,
        "channel": _S, "department": _S, "source": _S, "tags": {"type": "array"},
        "fields": {"type": "object"}, "attachments": {"type": "array"}}
    search = _op("search tickets, newest first", result="TicketList")
    search["parameters"] = [{"name": n, "in": "query", "required": False, "schema": _S,
                             "description": d} for n, d in _FILTERS]
    return {
        "/api/v1/tickets": {"post": _op("create a ticket", _body(create, ("subject",)),
                                        "201"), "get": search},
        _T: {"get": _op("one ticket, by id or number"),
             "patch": _op("change fields (409 if `version` is stale)", _body(editable))},
        _T + "/status": {"post": _op("move to a status", _body(
            {"status": {"enum": [s.value for s in TicketStatus]}, "reason": _S},
            ("status",)))},
        _T + "/notes": {"post": _op("an internal note", _body(_TEXT, ("body",)), "201")},
        _T + "/replies": {"post": _op("a reply sent to the customer",
                                      _body(_TEXT, ("body",)), "201")},
        _T + "/customer-replies": {"post": _op("what the customer wrote back", _body(
            {**_TEXT, "contact_id": _S}, ("body",)), "201")},
        _T + "/tags": {"post": _op("add and remove tags", _body(
            {"add": {"type": "array"}, "remove": {"type": "array"}}))},
        _T + "/fields": {"patch": _op("set custom fields (null removes)",
                                      _body({}))},
        _T + "/contacts": {"post": _op("link a contact", _body({"contact_id": _S},
                                                              ("contact_id",)))},
        _T + "/transfer": {"post": _op("hand to another department", _body(
            {"department": _S, "reason": _S}, ("department",)))},
        _T + "/history": {"get": _op("the audit history", result="History")},
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "ctl tickets API", "version": "1"},
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Ticket": _ticket_schema(),
                "TicketList": {"type": "object", "properties": {"tickets": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Ticket"}}}},
                "History": {"type": "object", "properties": {"events": {
                    "type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "integer"}, "at": _S, "kind": _S,
                        "actor": {"type": ["string", "null"]},
                        "public": {"type": "boolean"}, "data": {"type": "object"}}}}}},
            },
            "responses": {"Error": {"description": "refused, with the reason", "content": {
                _JSON: {"schema": {"type": "object", "properties": {
                    "error": _S, "message": _S}}}}}},
        },
    }
