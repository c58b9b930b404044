"""Traffic: detector/probe observations per road segment, and the segment registry."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

SEGMENTS_FILE = Path(__file__).with_name("traffic_segments.toml")


class TrafficObservation(BaseModel):
    """One detector or probe report for a segment over its reporting interval."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    segment_id: str = Field(min_length=1, max_length=64)
    timestamp: AwareDatetime = Field(description="end of the reporting interval")
    vehicle_count: int = Field(ge=0, le=100_000)
    mean_speed_kmh: float | None = Field(None, ge=0, le=200)
    occupancy_pct: float | None = Field(None, ge=0, le=100)
    source: str = Field("unknown", max_length=64)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class Segment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    road: str
    name: str
    lat: float
    lon: float
    length_m: float = Field(gt=0)
    lanes: int = Field(ge=1)
    free_flow_kmh: float = Field(gt=0)


class SegmentRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = ""
    segments: list[Segment] = Field(alias="segment")

    def by_id(self) -> dict[str, Segment]:
        return {s.id: s for s in self.segments}


@lru_cache(maxsize=4)
def load_segments(path: Path = SEGMENTS_FILE) -> SegmentRegistry:
    return SegmentRegistry.model_validate(tomllib.loads(path.read_text()))
