"""The API channel in OpenAPI 3.1: the paths and schemas ctl/web/openapi.py publishes.

The spec is the truth: the tests validate every answer against it, and fuzz it.
"""

from __future__ import annotations

from typing import Any

from adapters.api.keys import VISIBLE
from adapters.api.service import REPORTED
from ctl.contacts.states import ContactState
from ctl.store.models import IDENTITY_KINDS

_JSON = "application/json"
_S: dict[str, Any] = {"type": "string"}
_SHOWS: dict[str, Any] = {"type": "string", "pattern": VISIBLE}  # not blank
_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9._:@+-]{1,80}$"}
_KEY: list[dict[str, Any]] = [{"apiKey": []}]
_ADMIN: list[dict[str, Any]] = [{"bearer": []}]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), extra: bool = True
         ) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "required": list(required)}
    if not extra:
        out["additionalProperties"] = False
    return out


def _answer(schema: str, *statuses: str) -> dict[str, Any]:
    return {s: {"description": "OK", "content": {_JSON: {"schema": _ref(schema)}}}
            for s in statuses}


def _errors(*codes: str) -> dict[str, Any]:
    return {c: {"$ref": "#/components/responses/Error"} for c in codes}


def _op(summary: str, security: list[dict[str, Any]], ok: dict[str, Any],
        errors: tuple[str, ...], body: dict[str, Any] | None = None,
        parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": ["api channel"], "security": security,
                          "responses": {**ok, **_errors(*errors)}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {_JSON: {"schema": body}}}
    if parameters:
        op["parameters"] = parameters
    return op


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _S,
            "description": description}


_MESSAGE_IN = _obj({"id": {**_NAME, "description": "the platform's id of the message: "
                           "posting it again is a no-op"},
                    "text": {**_SHOWS, "maxLength": 20000}},
                   ("id", "text"))
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_OPT_S = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "ApiKey": _obj({"id": _S, "name": _S, "webhook_url": _OPT_S, "created_by": _OPT_S,
                    "created_at": _TIME, "revoked_at": _OPT_TIME},
                   ("id", "name", "webhook_url", "created_at", "revoked_at")),
    "NewApiKey": {"allOf": [_ref("ApiKey"), _obj({
        "key": {"type": "string", "description": "send it as X-API-Key; shown only now"},
        "webhook_secret": {"type": "string", "description": "signs webhooks; shown only "
                           "now"}}, ("key", "webhook_secret"))]},
    "ApiKeys": _obj({"keys": {"type": "array", "items": _ref("ApiKey")}}, ("keys",)),
    "Posted": _obj({
        "contact": _S, "customer": _S, "conversation": _S, "message": _S,
        "seq": {"type": "integer", "minimum": 1},
        "opened": {"type": "boolean", "description": "a new contact was opened (routed)"},
        "duplicate": {"type": "boolean", "description": "posted before: nothing was done"}},
        ("contact", "customer", "conversation", "message", "seq", "opened", "duplicate")),
    "Message": _obj({
        "id": _S, "seq": {"type": "integer"}, "direction": {"enum": ["in", "out"]},
        "text": _S, "subject": _OPT_S,
        "status": {"enum": ["received", "queued", "sent", "delivered", "read", "failed"]},
        "status_reason": _OPT_S, "at": _TIME,
        "attachments": {"type": "array", "items": _obj({
            "name": _OPT_S, "content_type": _OPT_S, "size": {"type": ["integer", "null"]}})}},
        ("id", "seq", "direction", "text", "status", "at", "attachments")),
    "Conversation": _obj({
        "contact": _S, "state": {"enum": [s.value for s in ContactState]},
        "messages": {"type": "array", "items": _ref("Message")}},
        ("contact", "state", "messages")),
    "Ok": _obj({"ok": {"const": True}}, ("ok",)),
}

PATHS: dict[str, Any] = {
    "/api/v1/api-keys": {
        "post": _op("create a platform's key (admins)", _ADMIN, _answer("NewApiKey", "201"),
                    ("400", "401", "403"), _obj({
                        "name": {**_SHOWS, "maxLength": 100},
                        "webhook_url": {"type": ["string", "null"], "format": "uri",
                                        "description": "agents' replies are POSTed here"}},
                        ("name",))),
        "get": _op("the keys (never the keys themselves)", _ADMIN, _answer("ApiKeys", "200"),
                   ("401", "403")),
    },
    "/api/v1/api-keys/{key}": {
        "delete": _op("revoke a key", _ADMIN, _answer("ApiKey", "200"),
                      ("401", "403", "404"), parameters=[_path("key", "the key's id")]),
    },
    "/api/v1/channel/contacts": {
        "post": _op(
            "a customer's message opening a contact (or joining the conversation's open one)",
            _KEY, _answer("Posted", "201", "200"), ("400", "401", "404", "422", "429"),
            _obj({"customer": _obj({"kind": {"enum": sorted(IDENTITY_KINDS)},
                                    "value": {**_SHOWS, "maxLength": 200},
                                    "name": {"type": "string", "maxLength": 200}},
                                   ("kind", "value")),
                  "conversation": {**_NAME, "description": "the platform's conversation "
                                   "(default: a new one)"},
                  "subject": {"type": "string", "maxLength": 500},
                  "queue": {"type": "string", "maxLength": 64},
                  "message": _MESSAGE_IN}, ("customer", "message"))),
    },
    "/api/v1/channel/contacts/{contact}/messages": {
        "post": _op("the customer's next message (a new contact of the conversation if "
                    "this one is over)", _KEY, _answer("Posted", "201", "200"),
                    ("400", "401", "404", "422", "429"), _obj({"message": _MESSAGE_IN},
                                                              ("message",)),
                    parameters=[_path("contact", "the contact's id")]),
        "get": _op("the contact's messages after a seq (poll for agents' replies)", _KEY,
                   _answer("Conversation", "200"), ("400", "401", "404"), parameters=[
                       _path("contact", "the contact's id"),
                       {"name": "after", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 0}}]),
    },
    "/api/v1/channel/messages/{message}/status": {
        "post": _op("what became of an agent's reply", _KEY, _answer("Ok", "200"),
                    ("400", "401", "404"), _obj({"status": {"enum": list(REPORTED)},
                                                 "reason": {"type": "string",
                                                            "maxLength": 500}},
                                                ("status",)),
                    parameters=[_path("message", "the reply's id")]),
    },
}

SECURITY = {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "a key an admin created (POST /api/v1/api-keys)"}}
