"""Answers of ctl's API checked against its published OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

import jsonschema

from ctl.web.openapi import document

DOC = document()


def conforms(method: str, path: str, status: int, body: Any) -> None:
    """`body`, answered with `status` to `method` `path` (a real path: ids filled in),
    is what the document says that operation answers."""
    for template, ops in DOC["paths"].items():
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path.split("?")[0]) and method.lower() in ops:
            answers = ops[method.lower()]["responses"]
            assert str(status) in answers, (method, path, status, body)
            answer = answers[str(status)]
            if "$ref" in answer:
                answer = DOC["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
            schema = answer["content"]["application/json"]["schema"]
            jsonschema.validate(body, {**schema, "components": DOC["components"]},
                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
            return
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")
