"""The agent desktop's settings (`desk:` in the settings file)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ctl.durations import Seconds


def _reasons() -> dict[str, dict[str, str]]:
    return {"break": {"en": "Break", "zh-CN": "休息"},
            "lunch": {"en": "Lunch", "zh-CN": "午餐"},
            "training": {"en": "Training", "zh-CN": "培训"},
            "meeting": {"en": "Meeting", "zh-CN": "会议"}}


class DeskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Failed logins in a row (for one username, known or not) before it is locked, and
    # for how long; "in a row" forgets failures older than the lock period.
    lockout_after: int = Field(5, ge=1)
    lockout_for: Seconds = Field(900.0, gt=0)
    # Reasons an agent may give for "away": code -> label per desk language.
    away_reasons: dict[str, dict[str, str]] = Field(default_factory=_reasons)

    @field_validator("away_reasons")
    @classmethod
    def _codes(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for code, labels in v.items():
            if not re.fullmatch(r"[a-z0-9_-]{1,32}", code):
                raise ValueError(f"away reason {code!r}: use 1-32 of a-z, 0-9, _ and -")
            if "en" not in labels:
                raise ValueError(f"away reason {code!r} needs an English label (en)")
        return v
