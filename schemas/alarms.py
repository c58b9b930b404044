"""Alarms: one record per transition of an alarm (raised, updated, cleared).

An alarm's ``id`` is deterministic (kind, entity and the episode's start), so a replayed
stream re-derives the same id and ClickHouse keeps one row per alarm.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class AlarmState(StrEnum):
    RAISED = "raised"
    UPDATED = "updated"
    CLEARED = "cleared"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Alarm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="deterministic: kind/entity/start in epoch ms")
    kind: str = Field(description="e.g. overspeed")
    entity: str = Field(description="what the alarm is about, e.g. a vehicle id")
    severity: Severity
    state: AlarmState
    started_at: AwareDatetime
    last_seen: AwareDatetime
    cleared_at: AwareDatetime | None = None
    value: float = Field(description="worst value observed in the episode so far")
    threshold: float
    version: int = Field(ge=1, description="increases with every transition of this alarm")
    context: dict[str, str | float | int | None] = Field(default_factory=dict)


def alarm_id(kind: str, entity: str, started_at: datetime) -> str:
    return f"{kind}/{entity}/{int(started_at.timestamp() * 1000)}"
