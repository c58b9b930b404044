"""Transit events: a bus position, aligned with GTFS-realtime ``VehiclePosition``.

A Kafka message on ``transit.vehicle-positions`` carries either one position object or a
JSON array of them (a batch): batching amortises the broker's and faust's per-message
cost, the way a GTFS-realtime FeedMessage carries many vehicles at once. Every position in
one message belongs to the same partition (connectors group them by the vehicle key).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator


class Occupancy(StrEnum):
    """GTFS-realtime ``OccupancyStatus`` names."""

    EMPTY = "EMPTY"
    MANY_SEATS_AVAILABLE = "MANY_SEATS_AVAILABLE"
    FEW_SEATS_AVAILABLE = "FEW_SEATS_AVAILABLE"
    STANDING_ROOM_ONLY = "STANDING_ROOM_ONLY"
    CRUSHED_STANDING_ROOM_ONLY = "CRUSHED_STANDING_ROOM_ONLY"
    FULL = "FULL"
    NOT_ACCEPTING_PASSENGERS = "NOT_ACCEPTING_PASSENGERS"
    NO_DATA_AVAILABLE = "NO_DATA_AVAILABLE"
    NOT_BOARDABLE = "NOT_BOARDABLE"


class VehiclePosition(BaseModel):
    """One GPS fix of a vehicle (GTFS-rt ``VehiclePosition``, flattened)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    vehicle_id: str = Field(min_length=1, max_length=128, description="stable vehicle id")
    label: str | None = Field(None, max_length=128, description="label shown to riders")
    route_id: str | None = Field(None, max_length=128)
    corridor: str | None = Field(
        None, max_length=64, description="Trans Semarang corridor (e.g. K1); route id if unknown"
    )
    trip_id: str | None = Field(None, max_length=128)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    bearing: float | None = Field(None, ge=0, le=360, description="degrees clockwise from north")
    speed_kmh: float | None = Field(None, ge=0, description="speed reported by the device")
    timestamp: AwareDatetime = Field(description="time of the fix (UTC)")
    occupancy: Occupancy | None = None
    source: str = Field("unknown", max_length=64, description="connector that published it")

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _has_a_fix(self) -> VehiclePosition:
        if self.lat == 0.0 and self.lon == 0.0:
            raise ValueError("lat 0, lon 0 (null island): the tracker had no fix")
        return self

    @property
    def ts(self) -> float:
        return self.timestamp.timestamp()


Id = Annotated[str, Meta(min_length=1, max_length=128)]
Text128 = Annotated[str, Meta(max_length=128)]


class Position(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """:class:`VehiclePosition` as the worker decodes it on its hot path: the same fields
    and limits, checked by msgspec in about a fifth of pydantic's time. Whatever msgspec
    refuses (or a time without an offset) is judged again by ``VehiclePosition``, which
    accepts what it accepts and says why it refuses (streams/validation.py)."""

    vehicle_id: Id
    label: Text128 | None = None
    route_id: Text128 | None = None
    corridor: Annotated[str, Meta(max_length=64)] | None = None
    trip_id: Text128 | None = None
    lat: Annotated[float, Meta(ge=-90, le=90)]
    lon: Annotated[float, Meta(ge=-180, le=180)]
    bearing: Annotated[float, Meta(ge=0, le=360)] | None = None
    speed_kmh: Annotated[float, Meta(ge=0)] | None = None
    timestamp: datetime
    occupancy: Occupancy | None = None
    source: Annotated[str, Meta(max_length=64)] = "unknown"

    @property
    def ts(self) -> float:
        return self.timestamp.timestamp()

    @classmethod
    def of(cls, model: VehiclePosition) -> Position:
        return cls(**model.model_dump())
