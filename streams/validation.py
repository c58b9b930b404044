"""Decoding and validating incoming messages; every failure becomes a :class:`Rejection`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import msgspec
from pydantic import BaseModel, ValidationError

from schemas.deadletter import Reason, validation_detail
from schemas.settings import BoundingBox
from schemas.transit import Position, VehiclePosition

_raw_items = msgspec.json.Decoder(list[msgspec.Raw])
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    detail: str
    raw: bytes
    index: int | None = None


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
            bad.append(Rejection(reason, validation_detail(exc), raw, index))
    return good, bad


_one_position = msgspec.json.Decoder(Position)
_many_positions = msgspec.json.Decoder(list[Position])
_lines_positions = msgspec.json.Decoder(Position)


def decode_positions(value: bytes | None) -> tuple[list[Position], list[Rejection]]:
    """msgspec first; a message it refuses is judged item by item by the pydantic model,
    so what is accepted, and every rejection's reason, is the model's."""
    if value:
        try:
            if value[:1] == b"{":  # one event per message: what most producers send
                one = _one_position.decode(value)
                if one.timestamp.tzinfo is UTC:
                    return [one], []
                decoded = [one]
            elif value.lstrip()[:1] == b"[":
                decoded = _many_positions.decode(value)
            else:
                decoded = [_one_position.decode(value)]
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        else:
            if all(p.timestamp.tzinfo is UTC for p in decoded):
                return decoded, []
            if all(p.timestamp.tzinfo is not None for p in decoded):
                return [_in_utc(p) for p in decoded], []
    good, bad = decode_many(value, VehiclePosition)
    return [Position.of(p) for p in good], bad


def decode_single_positions(values: list[bytes | None]) -> list[Position] | None:
    """One position per message, all decoded in one call, when every message is a single
    JSON object on one line with a UTC time (what producers of one event per message
    send); None when any is not, and then each goes through :func:`decode_positions`.
    Each message is one line, parsed alone: no message can borrow another's bytes."""
    if not all(v and v[:1] == b"{" and b"\n" not in v for v in values):
        return None
    try:
        decoded = _lines_positions.decode_lines(b"\n".join(values))  # type: ignore[arg-type]
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if len(decoded) != len(values) or not all(p.timestamp.tzinfo is UTC for p in decoded):
        return None
    return decoded


def _in_utc(p: Position) -> Position:
    if p.timestamp.tzinfo is UTC:
        return p
    return msgspec.structs.replace(p, timestamp=p.timestamp.astimezone(UTC))


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
    pos: VehiclePosition | Position, area: BoundingBox | None, now: datetime, max_future_s: float
) -> tuple[Reason, str] | None:
    return check_point(pos.lon, pos.lat, pos.timestamp, area, now, max_future_s)
