"""Connector heartbeats: every connector says, every few seconds, that it is alive and when
it last published an event, so the situation room can tell a quiet source from a dead one."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator


class ConnectorState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"  # a replay that reached the end of its input: silence is expected
    STOPPED = "stopped"  # shut down on purpose (or by a crash it survived to report)


class SourceHeartbeat(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    connector: str = Field(min_length=1, max_length=64)
    instance: str = Field(min_length=1, max_length=128, description="host:pid of the process")
    at: AwareDatetime
    state: ConnectorState = ConnectorState.RUNNING
    topics: list[str] = Field(default_factory=list, max_length=32)
    events_total: int = Field(0, ge=0, description="events published by this instance")
    last_event_at: AwareDatetime | None = None
    started_at: AwareDatetime

    @field_validator("at", "last_event_at", "started_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None
