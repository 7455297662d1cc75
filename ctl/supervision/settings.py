"""Alert thresholds, per queue (`routing.queues[].alerts` in the settings file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ctl.durations import Seconds


class AlertSettings(BaseModel):
    """An alert is raised when a figure crosses its threshold, cleared when it is back;
    null turns that alert off."""

    model_config = ConfigDict(extra="forbid")

    longest_wait: Seconds | None = Field(60.0, gt=0)  # the oldest waiting contact, at least
    service_level: float | None = Field(0.8, gt=0, le=1)  # answered within sla_seconds, below
    waiting: int | None = Field(None, ge=0)  # contacts waiting, above
