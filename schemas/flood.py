"""Flood: gauge readings (water level, rain), citizen flood reports, and the station registry.

Readings arrive over MQTT (``semarang/flood/<station_id>/<kind>``, JSON payload with
``value`` and ``timestamp``); the bridge adds station and kind from the topic.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

STATIONS_FILE = Path(__file__).with_name("flood_stations.toml")


class GaugeKind(StrEnum):
    LEVEL = "level"  # water level, cm above the gauge's zero
    RAIN = "rain"  # rainfall since the previous reading, mm


class GaugeReading(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    station_id: str = Field(min_length=1, max_length=64)
    kind: GaugeKind
    value: float = Field(description="cm for level, mm for rain")
    timestamp: AwareDatetime
    source: str = Field("unknown", max_length=64)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class FloodReport(BaseModel):
    """A citizen's report of standing water (laporan banjir).

    ``depth_cm`` is optional: most real citizen reports give none (about 80% of a
    PetaBencana day). A report without depth says there is water, not how much: it counts
    as evidence of flooding at the lowest band (Waspada) of its kecamatan and never sets
    Siaga or Awas by itself (streams/flood_logic.py)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    report_id: str = Field(min_length=1, max_length=64)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    depth_cm: float | None = Field(
        None, ge=0, le=500, description="water depth where the citizen stands, if given"
    )
    timestamp: AwareDatetime
    note: str | None = Field(None, max_length=1000)
    photo_url: str | None = Field(None, max_length=1000, description="a photo of the water")
    source: str = Field("unknown", max_length=64)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class Station(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    river: str
    kind: GaugeKind
    lat: float
    lon: float
    min_value: float = Field(description="below this a reading is impossible")
    max_value: float = Field(description="above this a reading is impossible")
    # Level bands (cm): Waspada, Siaga, Awas; each clears `hysteresis_cm` lower.
    waspada: float | None = None
    siaga: float | None = None
    awas: float | None = None
    hysteresis_cm: float = 10.0
    # Seconds between the station's readings, as it is meant to report. The silence limits
    # of `station_silent` are multiples of it (missed readings, from the rule book), so an
    # hourly gauge is not silent after a quiet quarter of an hour. The default is what the
    # simulator sends (SITROOM_FLOOD_SIM_INTERVAL_S): slow the simulator and raise it here.
    cadence_s: float = Field(10.0, gt=0, description="seconds between readings")

    def bands(self) -> list[tuple[float, float]] | None:
        if self.waspada is None or self.siaga is None or self.awas is None:
            return None
        return [(b, b - self.hysteresis_cm) for b in (self.waspada, self.siaga, self.awas)]


class StationRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = ""
    stations: list[Station] = Field(alias="station")

    def get(self, station_id: str) -> Station | None:
        return self.by_id().get(station_id)

    def by_id(self) -> dict[str, Station]:
        return {s.id: s for s in self.stations}


@lru_cache(maxsize=4)
def load_stations(path: Path = STATIONS_FILE) -> StationRegistry:
    return StationRegistry.model_validate(tomllib.loads(path.read_text()))
