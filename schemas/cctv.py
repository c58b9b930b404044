"""Security cameras: analytics events (crowd, fire/smoke, accident, vandalism, plate read)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

CAMERAS_FILE = Path(__file__).with_name("cctv_cameras.toml")


class EventKind(StrEnum):
    CROWD = "crowd"
    FIRE_SMOKE = "fire_smoke"
    ACCIDENT = "accident"
    VANDALISM = "vandalism"
    PLATE_READ = "plate_read"


class CameraEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    camera_id: str = Field(min_length=1, max_length=64)
    kind: EventKind
    confidence: float = Field(ge=0, le=1)
    timestamp: AwareDatetime
    plate: str | None = Field(None, max_length=16, description="plate_read only")
    people: int | None = Field(None, ge=0, le=100_000, description="crowd only: estimated count")
    source: str = Field("unknown", max_length=64)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class Camera(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    lat: float
    lon: float


class CameraRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = ""
    cameras: list[Camera] = Field(alias="camera")

    def by_id(self) -> dict[str, Camera]:
        return {c.id: c for c in self.cameras}


@lru_cache(maxsize=4)
def load_cameras(path: Path = CAMERAS_FILE) -> CameraRegistry:
    return CameraRegistry.model_validate(tomllib.loads(path.read_text()))
