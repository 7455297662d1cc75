"""The JSON Schema of flow files, generated from the verbs' argument models, published as
ivr_flows/flow.schema.json for editors (each flow's first line points at it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic.json_schema import models_json_schema

from ctl.ivr.flow import Header
from ctl.ivr.verbs import VERBS

SCHEMA_NAME = "flow.schema.json"


def flow_schema() -> dict[str, Any]:
    mode: Literal["validation"] = "validation"
    models = [(v.Args, mode) for v in VERBS.values()]
    refs, top = models_json_schema(models, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = top.get("$defs", {})
    steps = []
    for name, verb in VERBS.items():
        args = refs[(verb.Args, "validation")]
        steps.append({
            "title": name,
            "description": (verb.__doc__ or "").strip(),
            "type": "object",
            "required": [name],
            "additionalProperties": False,
            "properties": {
                # Verbs accept a shorthand (say: "Hello"); editors get the full form.
                name: {"anyOf": [args, {"type": ["string", "array", "null", "boolean", "object"]}]},
                "next": {"type": "string", "description": "the step after this one"},
                "on": {"type": "object", "additionalProperties": False,
                       "properties": {o: {"type": "string"} for o in verb.outcomes},
                       "description": "outcome -> step"},
                "description": {"type": "string"},
            },
        })
    header = Header.model_json_schema()
    header["properties"]["steps"] = {"type": "object", "additionalProperties": {"oneOf": steps}}
    header["$defs"] = {**header.get("$defs", {}), **defs}
    header["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    header["title"] = "ctl IVR flow"
    return header


def write(folder: Path) -> Path:
    path = folder / SCHEMA_NAME
    path.write_text(json.dumps(flow_schema(), indent=1, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path
