"""Durations in configuration files: a number of seconds, or a string such as "90s", "30m",
"8h" or "1h30m". One type for the settings file and `ctl simulate` scenarios alike."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([hms])")


def seconds(v: Any) -> Any:
    """90, 90.5, "90s", "30m", "8h", "1h30m" -> seconds; anything else is left to pydantic."""
    if isinstance(v, bool):
        raise ValueError("expected a time (seconds, or a string like '30m' or '8h')")
    if not isinstance(v, str):
        return v
    text = v.strip()
    try:
        return float(text)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"{v!r} is not a time (seconds, or a string like '90s', '30m', "
                         "'8h', '1h30m')")
    return total


Seconds = Annotated[float, BeforeValidator(seconds)]
