"""Alarms: one record per transition of an alarm, and the commands people give them.

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
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


class Severity(StrEnum):
    """A ladder shared by every domain; a rule maps its own level names onto it."""

    INFO = "info"
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"


class Reason(StrEnum):
    """Why a transition happened."""

    RAISED = "raised"
    ESCALATED = "escalated"
    DEESCALATED = "deescalated"
    WORSENED = "worsened"
    RENOTIFY = "renotify"
    ACKNOWLEDGED = "acknowledged"
    RECOVERED = "recovered"
    SILENCE = "silence"
    MANUAL_CLEAR = "manual_clear"


class Alarm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="deterministic: kind/entity/start in epoch ms")
    kind: str = Field(description="the rule, e.g. overspeed, flood_level")
    domain: str = Field("", description="transit, flood, traffic, ...")
    entity: str = Field(description="what the alarm is about, e.g. a vehicle or station id")
    severity: Severity
    level: str = Field("", description="the rule's own level name, e.g. siaga")
    state: AlarmState
    reason: Reason = Reason.RAISED
    started_at: AwareDatetime
    last_seen: AwareDatetime
    cleared_at: AwareDatetime | None = None
    value: float = Field(description="worst value observed in the episode so far")
    threshold: float = Field(description="raise threshold of the current level")
    version: int = Field(ge=1, description="increases with every transition of this alarm")
    acknowledged_by: str | None = None
    acknowledged_at: AwareDatetime | None = None
    cleared_by: str | None = None
    context: dict[str, str | float | int | bool | None] = Field(default_factory=dict)


class CommandAction(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    CLEAR = "clear"


class AlarmCommand(BaseModel):
    """A person acknowledging or clearing an alarm (through the API)."""

    model_config = ConfigDict(extra="forbid")

    alarm_id: str = Field(min_length=1, max_length=256)
    action: CommandAction
    by: str = Field(min_length=1, max_length=128, description="who")
    note: str | None = Field(None, max_length=2000)
    at: AwareDatetime = Field(description="when")
    department: str | None = Field(
        None, max_length=128, description="the department the person acts for; null: the room"
    )


def alarm_id(kind: str, entity: str, started_at: datetime) -> str:
    return f"{kind}/{entity}/{int(started_at.timestamp() * 1000)}"


def alarm_key(alarm_id_: str) -> str:
    """The dedup key (kind/entity) of an alarm id: one open alarm per key."""
    return alarm_id_.rsplit("/", 1)[0]
