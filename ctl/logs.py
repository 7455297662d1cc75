"""Structured logs. Phone numbers never reach a log line unmasked."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

# 7+ digits, optionally with a leading + and separators: what a phone number looks like
# in caller ids, URIs and DIDs. Keep the country/area prefix and the last 2 digits so an
# operator can still tell calls apart.
_PHONE = re.compile(r"(?<![\w.])(\+?\d[\d\- ]{5,}\d)(?![\w.])")


def mask_phones(text: str) -> str:
    def _mask(m: re.Match[str]) -> str:
        digits = m.group(1)
        if len(re.sub(r"\D", "", digits)) < 7:
            return digits
        return digits[:3] + "*" * (len(digits) - 5) + digits[-2:]

    return _PHONE.sub(_mask, text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_phones(record.getMessage()),
        }
        for key, value in getattr(record, "ctx", {}).items():
            out[key] = mask_phones(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    converter = time.gmtime  # type: ignore[assignment]

    def format(self, record: logging.LogRecord) -> str:
        ctx = " ".join(f"{k}={v}" for k, v in getattr(record, "ctx", {}).items())
        record.msg = mask_phones(f"{record.getMessage()} {ctx}".rstrip())
        record.args = ()
        return super().format(record)


def setup(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel("WARNING")


def ctx(**fields: Any) -> dict[str, Any]:
    """`log.info("msg", extra=ctx(call=..))`: fields land as JSON keys."""
    return {"ctx": fields}
