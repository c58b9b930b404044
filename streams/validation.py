"""Decoding and validating incoming messages; every failure becomes a :class:`Rejection`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import msgspec
from pydantic import BaseModel, ValidationError

from schemas.deadletter import Reason
from schemas.settings import BoundingBox
from schemas.transit import VehiclePosition

_raw_items = msgspec.json.Decoder(list[msgspec.Raw])
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    detail: str
    raw: bytes
    index: int | None = None


def _schema_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def decode_many(value: bytes | None, model: type[M]) -> tuple[list[M], list[Rejection]]:
    """A message holds one JSON object or an array of them; each item is judged alone."""
    if not value:
        return [], [Rejection(Reason.INVALID_JSON, "empty message", value or b"")]
    head = value.lstrip()[:1]
    if head == b"[":
        try:
            items = [bytes(r) for r in _raw_items.decode(value)]
        except msgspec.DecodeError as exc:
            return [], [Rejection(Reason.INVALID_JSON, str(exc), value)]
        indexed: list[tuple[int | None, bytes]] = list(enumerate(items))
    else:
        indexed = [(None, value)]
    good: list[M] = []
    bad: list[Rejection] = []
    for index, raw in indexed:
        try:
            good.append(model.model_validate_json(raw))
        except ValidationError as exc:
            json_broken = any(e["type"] == "json_invalid" for e in exc.errors())
            reason = Reason.INVALID_JSON if json_broken else Reason.SCHEMA
            bad.append(Rejection(reason, _schema_detail(exc), raw, index))
    return good, bad


def decode_positions(value: bytes | None) -> tuple[list[VehiclePosition], list[Rejection]]:
    return decode_many(value, VehiclePosition)


def future_problem(ts: datetime, now: datetime, max_future_s: float) -> tuple[Reason, str] | None:
    ahead = (ts - now.astimezone(UTC)).total_seconds()
    if ahead > max_future_s:
        return Reason.FUTURE_TIMESTAMP, f"timestamp {ts.isoformat()} is {ahead:.0f}s ahead"
    return None


def check_point(
    lon: float,
    lat: float,
    ts: datetime,
    area: BoundingBox | None,
    now: datetime,
    max_future_s: float,
) -> tuple[Reason, str] | None:
    if area is not None and not area.contains(lon, lat):
        return Reason.OUTSIDE_SERVICE_AREA, f"lon={lon} lat={lat} outside {area.model_dump()}"
    return future_problem(ts, now, max_future_s)


def check_position(
    pos: VehiclePosition, area: BoundingBox | None, now: datetime, max_future_s: float
) -> tuple[Reason, str] | None:
    return check_point(pos.lon, pos.lat, pos.timestamp, area, now, max_future_s)
