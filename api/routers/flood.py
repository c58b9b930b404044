"""Flood: stations, readings, kecamatan status, citizen reports, CAP alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from api.auth import may_read
from api.cap import alert_xml, feed_xml
from api.deps import (
    UtcDatetime,
    WarehouseDep,
    local_range,
    local_utc,
    publish,
    run_query,
    utc,
)
from api.privacy import FLOOD_REPORT_PERSONAL_COLUMNS, public_row
from api.routers.transit import context_of
from schemas import clickhouse_ddl as ddl
from schemas.access import Role
from schemas.catalog import FLOOD_REPORTS
from schemas.flood import FloodReport, load_stations
from schemas.spatial import gazetteer

router = APIRouter(prefix="/v1/flood", tags=["flood"])

FLOOD_KINDS = "('flood_level', 'flood_rise', 'station_silent')"


class StationOut(BaseModel):
    id: str
    name: str
    river: str
    kind: str
    lat: float
    lon: float
    kecamatan: str | None
    bands_cm: dict[str, float] | None
    latest_value: float | None
    latest_at: UtcDatetime | None
    level: str = Field(description="normal, waspada, siaga or awas (open flood_level alarm)")


class Reading(BaseModel):
    ts: UtcDatetime
    value: float


class KecamatanStatus(BaseModel):
    kecamatan: str
    status: str
    level_index: int
    gauge_status: str
    report_status: str
    reports: int
    max_report_depth_cm: float
    stations: list[str]
    updated_at: UtcDatetime


class ReportIn(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    # Optional, as most citizens give none: such a report counts as Waspada evidence for
    # its kecamatan and never raises Siaga or Awas by itself (streams/flood_logic.py).
    depth_cm: float | None = Field(None, ge=0, le=500, description="water depth, if known")
    timestamp: datetime | None = Field(None, description="default: now")
    note: str | None = Field(None, max_length=1000)
    photo_url: str | None = Field(None, max_length=1000, pattern=r"^https?://\S+$")


class ReportAccepted(BaseModel):
    report_id: str
    kecamatan: str


@router.get(
    "/stations", response_model=list[StationOut], summary="Gauges with their latest reading"
)
async def stations(warehouse: WarehouseDep) -> list[StationOut]:
    latest = await run_query(
        warehouse,
        f"SELECT station_id, argMax(value, ts) AS value, max(ts) AS latest FROM {ddl.GAUGE_READINGS} GROUP BY station_id",
    )
    open_levels = await run_query(
        warehouse,
        f"SELECT entity, level FROM {ddl.ALARMS} FINAL WHERE kind = 'flood_level' AND state != 'cleared'",
    )
    by_station = {r["station_id"]: r for r in latest}
    levels = {r["entity"]: r["level"] for r in open_levels}
    g = gazetteer()
    out = []
    for s in load_stations().stations:
        r = by_station.get(s.id)
        bands = {"waspada": s.waspada, "siaga": s.siaga, "awas": s.awas} if s.bands() else None
        out.append(StationOut(
            id=s.id, name=s.name, river=s.river, kind=s.kind.value, lat=s.lat, lon=s.lon,
            kecamatan=g.kecamatan.at(s.lon, s.lat), bands_cm=bands,  # type: ignore[arg-type]
            latest_value=r["value"] if r else None, latest_at=r["latest"] if r else None,
            level=levels.get(s.id, "normal"),
        ))  # fmt: skip
    return out


@router.get("/stations/{station_id}/readings", response_model=list[Reading])
async def readings(
    request: Request,
    warehouse: WarehouseDep,
    station_id: Annotated[str, Path(min_length=1, max_length=64)],
    hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 2000,
    since: Annotated[
        datetime | None, Query(description="from this time on (naive: local time)")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="before this time (naive: local time)")
    ] = None,
) -> list[Reading]:
    """The last ``hours`` before the station's newest reading; or, with ``since`` and/or
    ``until``, the readings in that range (a backfilled history, e.g. ``gauge-replay``)."""
    if load_stations().get(station_id) is None:
        raise HTTPException(404, f"no station {station_id!r}")
    if since is not None or until is not None:
        since, until = local_range(request, since, until)
        rows = await run_query(
            warehouse,
            f"SELECT ts, value FROM {ddl.GAUGE_READINGS} FINAL WHERE station_id = {{s:String}}"
            " AND ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}"
            " ORDER BY ts LIMIT {limit:UInt32}",
            {"s": station_id, "limit": limit,
             "since": since or datetime(1970, 1, 1, tzinfo=UTC),
             "until": until or datetime(2200, 1, 1, tzinfo=UTC)},
        )  # fmt: skip
        return [Reading(**r) for r in rows]
    rows = await run_query(
        warehouse,
        f"SELECT ts, value FROM {ddl.GAUGE_READINGS} FINAL WHERE station_id = {{s:String}}"
        " AND ts >= (SELECT max(ts) FROM flood_gauge_readings WHERE station_id = {s:String}) - toIntervalSecond({h:UInt32})"
        " ORDER BY ts LIMIT {limit:UInt32}",
        {"s": station_id, "h": int(hours * 3600), "limit": limit},
    )
    return [Reading(**r) for r in rows]


@router.get("/status", response_model=list[KecamatanStatus], summary="Flood status per kecamatan")
async def status(warehouse: WarehouseDep) -> list[KecamatanStatus]:
    rows = await run_query(
        warehouse,
        f"SELECT {', '.join(ddl.STATUS_COLUMNS)} FROM {ddl.FLOOD_STATUS} FINAL ORDER BY level_index DESC, kecamatan",
    )
    return [KecamatanStatus(**r) for r in rows]


@router.post(
    "/reports", status_code=202, response_model=ReportAccepted, summary="A citizen's flood report"
)
async def report(request: Request, body: ReportIn) -> ReportAccepted:
    kecamatan = gazetteer().kecamatan.at(body.lon, body.lat)
    if kecamatan is None:
        raise HTTPException(
            422,
            [{"loc": ["body", "lat"], "msg": "location is outside Kota Semarang", "type": "value_error"},
             {"loc": ["body", "lon"], "msg": "location is outside Kota Semarang", "type": "value_error"}],
        )  # fmt: skip
    now = datetime.now(UTC)
    ts = local_utc(request, body.timestamp) or now
    if ts > now + timedelta(minutes=5):
        raise HTTPException(
            422,
            [
                {
                    "loc": ["body", "timestamp"],
                    "msg": "timestamp is in the future",
                    "type": "value_error",
                }
            ],
        )
    event = FloodReport(
        report_id=str(uuid.uuid4()), lat=body.lat, lon=body.lon, depth_cm=body.depth_cm,
        timestamp=ts, note=body.note, photo_url=body.photo_url, source="api",
    )  # fmt: skip
    await publish(request, FLOOD_REPORTS.name, event.report_id, event.model_dump_json().encode())
    return ReportAccepted(report_id=event.report_id, kecamatan=kecamatan)


@router.get(
    "/reports",
    summary="Citizen reports, newest first",
    description="The exact point, note and photo of each report are null unless the caller "
    "has the staff role: the public sees the kecamatan, depth and time.",
)
async def reports(
    request: Request,
    warehouse: WarehouseDep,
    kecamatan: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    cond: str
    params: dict[str, Any]
    cond, params = "1", {"limit": limit}
    if kecamatan:
        cond, params = "kecamatan = {k:String}", {"limit": limit, "k": kecamatan}
    rows = await run_query(
        warehouse,
        f"SELECT report_id, ts, lat, lon, depth_cm, kecamatan, note, photo_url, source FROM {ddl.FLOOD_REPORTS} FINAL"
        f" WHERE {cond} ORDER BY ts DESC LIMIT {{limit:UInt32}}",
        params,
    )
    if may_read(request, Role.STAFF):
        return rows
    return [public_row(r, FLOOD_REPORT_PERSONAL_COLUMNS) for r in rows]


async def _active(warehouse: WarehouseDep, alarm_id: str | None = None) -> list[dict[str, Any]]:
    cond, params = "state != 'cleared'", {}
    if alarm_id:
        cond, params = "id = {id:String}", {"id": alarm_id}
    rows = await run_query(
        warehouse,
        f"SELECT {', '.join(ddl.ALARM_COLUMNS)} FROM {ddl.ALARMS} FINAL"
        f" WHERE kind IN {FLOOD_KINDS} AND {cond} ORDER BY last_seen DESC",
        params,
    )
    for r in rows:
        r["context"] = context_of(r["context"])
        for key in ("started_at", "last_seen", "cleared_at"):
            r[key] = utc(r[key])
    return rows


@router.get("/cap", summary="Active flood alarms as CAP 1.2 alerts in an Atom feed",
            response_class=Response, responses={200: {"content": {"application/atom+xml": {}}}})  # fmt: skip
async def cap_feed(request: Request, warehouse: WarehouseDep) -> Response:
    alarms = await _active(warehouse)
    earlier = await _sent_before(warehouse, [a["id"] for a in alarms])
    body = feed_xml(alarms, str(request.url), earlier)
    return Response(body, media_type="application/atom+xml")


async def _sent_before(
    warehouse: WarehouseDep, ids: list[str]
) -> dict[str, list[tuple[int, datetime]]]:
    """Every version of these alarms and when it was sent: what an Update or a Cancel
    references (CAP 1.2 requires it)."""
    if not ids:
        return {}
    rows = await run_query(
        warehouse,
        f"SELECT id, version, last_seen FROM {ddl.ALARM_TRANSITIONS} FINAL"
        " WHERE id IN {ids:Array(String)} ORDER BY id, version",
        {"ids": ids},
    )
    out: dict[str, list[tuple[int, datetime]]] = {}
    for r in rows:
        sent = utc(r["last_seen"])
        assert sent is not None
        out.setdefault(r["id"], []).append((int(r["version"]), sent))
    return out


@router.get("/cap/{alarm_id:path}", summary="One flood alarm as a CAP 1.2 alert",
            response_class=Response, responses={200: {"content": {"application/cap+xml": {}}}})  # fmt: skip
async def cap_alert(warehouse: WarehouseDep, alarm_id: str) -> Response:
    rows = await _active(warehouse, alarm_id)
    if not rows:
        raise HTTPException(404, f"no flood alarm {alarm_id!r}")
    earlier = await _sent_before(warehouse, [alarm_id])
    return Response(alert_xml(rows[0], earlier.get(alarm_id)), media_type="application/cap+xml")
