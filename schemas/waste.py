"""Garbage trucks: GPS fixes of the city's waste fleet, and the sites they serve."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

SITES_FILE = Path(__file__).with_name("waste_sites.toml")


class TruckPosition(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    truck_id: str = Field(min_length=1, max_length=64)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    timestamp: AwareDatetime
    speed_kmh: float | None = Field(None, ge=0, le=200)
    source: str = Field("unknown", max_length=64)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class SiteKind(StrEnum):
    TPA = "tpa"  # the landfill: a visit is a completed trip
    DEPOT = "depot"
    TRANSFER = "transfer"


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    kind: SiteKind
    lat: float
    lon: float
    radius_m: float = Field(gt=0)


class SiteRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = ""
    sites: list[Site] = Field(alias="site")


@lru_cache(maxsize=4)
def load_sites(path: Path = SITES_FILE) -> SiteRegistry:
    return SiteRegistry.model_validate(tomllib.loads(path.read_text()))
