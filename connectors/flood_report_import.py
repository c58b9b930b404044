"""Replay of PetaBencana.id (CogniCity) flood report archives into ``flood.citizen-reports``.

Reads what PetaBencana publishes, in any of these shapes:

- a GeoJSON FeatureCollection of reports, as in its data archives (``export-reports.sh``
  of the CogniCity database) or ``/reports/archive?geoformat=geojson``;
- the API's wrapper ``{"statusCode": 200, "result": ...}`` around a FeatureCollection or a
  TopoJSON Topology (the API's default ``geoformat``; quantized coordinates are decoded);
- a bare JSON array of features, or JSON lines with one feature each.

Each feature is a point with ``created_at``, ``text`` (or ``title``), optional
``report_data.flood_depth`` (cm; ``report_data`` may also come as a JSON string),
``image_url``, ``pkey``, ``source`` and ``disaster_type``. A time without an offset (the
archives are in UTC+7 without saying so) is read in SITROOM_TIMEZONE (Asia/Jakarta).

What is kept: the point, the time, the depth when given (most reports have none: they
count as Waspada evidence only, see streams/flood_logic.py), the text with @handles masked,
the photo link and the originating app (``petabencana:qlue``). Usernames, the post's
``url`` (a tweet's names its author) and ``tags`` are left out; a refused feature is
dead-lettered with these fields only. Report ids are ``petabencana-<pkey>``, or a digest
of the report's own content where an archive has no pkey, so a replay replaces the rows
it wrote before. Reports of other hazards (earthquake, haze, ...) are skipped and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from connectors.base import Source, SourceError
from connectors.publisher import KafkaPublisher
from schemas.catalog import FLOOD_REPORTS
from schemas.deadletter import Reason, validation_detail
from schemas.flood import FloodReport

log = logging.getLogger(__name__)

BATCH = 200
MAX_NOTE = 1000
_HANDLE = re.compile(r"(?<![\w.@])@\w{1,50}")
NOT_FLOOD = "not a flood report"


class FeatureError(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def load_json_lenient(data: bytes, path: Path) -> Any:
    """The document; JSON lines become a list. Raises SourceError when it is neither."""
    text = data.decode("utf-8-sig", errors="replace")
    try:
        return json.loads(text)
    except ValueError as first:
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            return [json.loads(line) for line in lines]
        except ValueError:
            raise SourceError(f"{path}: not JSON: {first}") from None


def unwrap(doc: Any, path: Path) -> Any:
    """The payload of a PetaBencana API response; other documents as they are."""
    if isinstance(doc, dict) and "statusCode" in doc:
        status = doc.get("statusCode")
        if status != 200:
            why = doc.get("message") or doc.get("error") or ""
            raise SourceError(f"{path}: the API answered statusCode {status} {why}".rstrip())
        return doc.get("result")
    return doc


def _transform(topology: dict[str, Any]) -> Any:
    t = topology.get("transform")
    if not isinstance(t, dict):
        return lambda xy: xy
    (sx, sy), (tx, ty) = t.get("scale", (1, 1)), t.get("translate", (0, 0))
    return lambda xy: [xy[0] * sx + tx, xy[1] * sy + ty]


def geo_features(doc: Any, path: Path) -> Iterator[tuple[dict[str, Any], Any]]:
    """(properties, geometry) of every feature of a FeatureCollection, a Topology (points
    decoded, quantization undone), a list of features or a single feature."""
    doc = unwrap(doc, path)
    if doc is None:
        return
    if isinstance(doc, list):
        for item in doc:
            yield from geo_features(item, path)
        return
    if not isinstance(doc, dict):
        raise SourceError(f"{path}: expected GeoJSON or TopoJSON, got a JSON {type(doc).__name__}")
    kind = doc.get("type")
    if kind == "FeatureCollection":
        for f in doc.get("features") or []:
            if isinstance(f, dict):
                yield f.get("properties") or {}, f.get("geometry")
            else:
                yield {}, f
    elif kind == "Feature":
        yield doc.get("properties") or {}, doc.get("geometry")
    elif kind == "Topology":
        decode = _transform(doc)
        for obj in (doc.get("objects") or {}).values():
            geometries = obj.get("geometries", [obj]) if isinstance(obj, dict) else []
            for g in geometries:
                if not isinstance(g, dict):
                    continue
                geometry = {"type": g.get("type"), "coordinates": g.get("coordinates")}
                coords = g.get("coordinates")
                if g.get("type") == "Point" and isinstance(coords, list) and len(coords) >= 2:
                    geometry["coordinates"] = decode(coords)
                yield g.get("properties") or {}, geometry
    else:
        keys = ", ".join(sorted(doc)[:8])
        raise SourceError(
            f"{path}: neither a GeoJSON FeatureCollection nor a PetaBencana API response"
            f" (type {kind!r}; keys {keys})"
        )


def parse_time(value: Any, zone: tzinfo, field: str = "created_at") -> datetime:
    """An ISO 8601 time; one without an offset is local time in ``zone``."""
    if not isinstance(value, str) or not value.strip():
        raise FeatureError(Reason.SCHEMA, f"{field} is missing")
    text = value.strip().replace(" ", "T", 1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FeatureError(Reason.SCHEMA, f"{field} {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _point(geometry: Any) -> tuple[float, float]:
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        raise FeatureError(
            Reason.SCHEMA,
            "the report has no point" if kind is None else f"the report is a {kind}, not a point",
        )
    coords = geometry.get("coordinates")
    try:
        lon, lat = float(coords[0]), float(coords[1])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        raise FeatureError(Reason.SCHEMA, "the report's coordinates are not two numbers") from None
    if not (math.isfinite(lon) and math.isfinite(lat)) or not (
        -180 <= lon <= 180 and -90 <= lat <= 90
    ):
        raise FeatureError(Reason.IMPOSSIBLE_VALUE, f"lon={lon} lat={lat} is not a place on Earth")
    if lon == 0 and lat == 0:
        raise FeatureError(Reason.IMPOSSIBLE_VALUE, "lon=0 lat=0 is no place (a missing position)")
    return lon, lat


def _depth(report_data: Any) -> float | None:
    if isinstance(report_data, str):
        try:
            report_data = json.loads(report_data) if report_data.strip() else None
        except ValueError:
            raise FeatureError(Reason.SCHEMA, "report_data is not JSON") from None
    if not isinstance(report_data, dict):
        return None
    raw = report_data.get("flood_depth")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        depth = float(str(raw).replace(",", ".")) if isinstance(raw, str) else float(raw)
    except (TypeError, ValueError):
        raise FeatureError(
            Reason.SCHEMA, f"report_data.flood_depth {raw!r} is not a number of centimetres"
        ) from None
    if not math.isfinite(depth) or not 0 <= depth <= 500:
        raise FeatureError(
            Reason.IMPOSSIBLE_VALUE, f"report_data.flood_depth {raw!r} cm is outside 0..500 cm"
        )
    return depth


def _note(props: dict[str, Any]) -> str | None:
    for key in ("text", "title"):
        value = props.get(key)
        if isinstance(value, str) and value.strip():
            return _HANDLE.sub("@…", value.strip())[:MAX_NOTE]
    return None


def _photo(value: Any) -> str | None:
    if isinstance(value, str) and re.match(r"^https?://\S+$", value.strip()) and len(value) <= 1000:
        return value.strip()
    return None


def _id(props: dict[str, Any], lon: float, lat: float, when: datetime) -> str:
    pkey = props.get("pkey")
    if isinstance(pkey, str | int) and str(pkey).strip():
        return f"petabencana-{str(pkey).strip()}"[:64]
    # Archives without pkey: the report's own facts name it, so a replay gives the same id.
    digest = hashlib.sha1(
        f"{when.isoformat()}|{lon:.6f}|{lat:.6f}|{props.get('source')}|{props.get('text')}".encode()
    ).hexdigest()[:20]
    return f"petabencana-{digest}"


def minimal(props: dict[str, Any], geometry: Any) -> bytes:
    """What a dead letter keeps of a feature: the fields read, no text, names or links."""
    kept = {
        k: props.get(k)
        for k in ("pkey", "created_at", "disaster_type", "source", "report_data")
        if k in props
    }
    return json.dumps(
        {"properties": kept, "geometry": geometry}, ensure_ascii=False, default=str
    ).encode()


def to_report(props: dict[str, Any], geometry: Any, zone: tzinfo) -> FloodReport | None:
    """The flood report of a feature; None for another hazard; FeatureError saying why not."""
    hazard = props.get("disaster_type")
    if isinstance(hazard, str) and hazard.strip() and hazard.strip().lower() != "flood":
        return None
    lon, lat = _point(geometry)
    when = parse_time(props.get("created_at"), zone)
    app = props.get("source")
    source = f"petabencana:{app}" if isinstance(app, str) and app.strip() else "petabencana"
    try:
        return FloodReport(
            report_id=_id(props, lon, lat, when), lat=lat, lon=lon,
            depth_cm=_depth(props.get("report_data")), timestamp=when, note=_note(props),
            photo_url=_photo(props.get("image_url")), source=source[:64],
        )  # fmt: skip
    except ValidationError as exc:
        raise FeatureError(Reason.SCHEMA, validation_detail(exc)) from None


def _key(event: BaseModel) -> str:
    assert isinstance(event, FloodReport)
    return event.report_id


class FloodReportImport(Source):
    name = "flood-report-import"
    finite = True
    topic = FLOOD_REPORTS

    def __init__(self, files: Sequence[Path], zone: tzinfo) -> None:
        self.files = list(files)
        self.zone = zone
        self.hazards: Counter[str] = Counter()  # other hazards met, for the last word
        self.features = 0

    def key(self, event: BaseModel) -> str:
        return _key(event)

    def emptiness(self) -> str:
        if not self.features:
            return "the files held no reports"
        if self.hazards:
            kinds = ", ".join(f"{k} {n:,}" for k, n in self.hazards.most_common())
            return f"reports of other hazards: {kinds}"
        return ""

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        batch: list[FloodReport] = []
        for path in self.files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise SourceError(f"cannot read {path}: {exc}") from exc
            for n, (props, geometry) in enumerate(
                geo_features(load_json_lenient(data, path), path), 1
            ):
                self.features += 1
                where = f"{path}:feature {n}"
                try:
                    report = to_report(
                        props if isinstance(props, dict) else {}, geometry, self.zone
                    )
                except FeatureError as exc:
                    await publisher.dead_letter(
                        minimal(props if isinstance(props, dict) else {}, geometry),
                        exc.reason.value, str(exc), where,
                    )  # fmt: skip
                    continue
                if report is None:
                    self.hazards[str(props.get("disaster_type")).strip().lower()] += 1
                    publisher.skip(NOT_FLOOD)
                    continue
                batch.append(report)
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch
