"""Transit: overspeed episodes, vehicles and their 1-minute windows, corridor windows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel

from api.deps import UtcDatetime, WarehouseDep, local_range, run_query, utc
from schemas import clickhouse_ddl as ddl

router = APIRouter(prefix="/v1/transit", tags=["transit"])

VehicleId = Annotated[str, Path(min_length=1, max_length=128, description="vehicle id")]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="rows to skip")]


class OverspeedEpisode(BaseModel):
    alarm_id: str
    vehicle_id: str
    corridor: str | None
    severity: str
    state: str
    started_at: UtcDatetime
    last_seen: UtcDatetime
    cleared_at: UtcDatetime | None
    max_speed_kmh: float
    limit_kmh: float


class EpisodePage(BaseModel):
    items: list[OverspeedEpisode]
    total: int
    limit: int
    offset: int


class Position(BaseModel):
    vehicle_id: str
    ts: UtcDatetime
    label: str | None
    route_id: str | None
    corridor: str
    trip_id: str | None
    lat: float
    lon: float
    bearing: float | None
    speed_kmh: float | None
    occupancy: str | None
    source: str
    kecamatan: str | None = None


class VehicleWindow(BaseModel):
    window_start: UtcDatetime
    corridor: str
    positions: int
    mean_speed_kmh: float | None
    max_speed_kmh: float | None
    seconds_over_limit: float
    limit_kmh: float


class VehicleDetail(BaseModel):
    vehicle_id: str
    latest: Position
    windows: list[VehicleWindow]


class CorridorWindow(BaseModel):
    corridor: str
    window_start: UtcDatetime
    positions: int
    vehicles: int
    mean_speed_kmh: float | None
    max_speed_kmh: float | None
    seconds_over_limit: float


def _where(conds: list[str]) -> str:
    return " AND ".join(conds) if conds else "1"


@router.get("/overspeed", response_model=EpisodePage, summary="Overspeed episodes")
async def overspeed(
    request: Request,
    warehouse: WarehouseDep,
    corridor: Annotated[str | None, Query(max_length=64)] = None,
    vehicle: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[datetime | None, Query(description="episodes started at or after")] = None,
    until: Annotated[datetime | None, Query(description="episodes started before")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> EpisodePage:
    since, until = local_range(request, since, until)
    conds = ["kind = 'overspeed'"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if corridor:
        conds.append("JSONExtractString(context, 'corridor') = {corridor:String}")
        params["corridor"] = corridor
    if vehicle:
        conds.append("entity = {vehicle:String}")
        params["vehicle"] = vehicle
    if since:
        conds.append("started_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if until:
        conds.append("started_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    where = _where(conds)
    rows = await run_query(
        warehouse,
        f"SELECT id, entity, JSONExtractString(context, 'corridor') AS corridor, severity, state,"
        f" started_at, last_seen, cleared_at, value, JSONExtractFloat(context, 'limit_kmh') AS limit_kmh"
        f" FROM {ddl.ALARMS} FINAL"
        f" WHERE {where} ORDER BY started_at DESC, id"
        " LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        params,
    )
    total = await run_query(
        warehouse, f"SELECT count() AS n FROM {ddl.ALARMS} FINAL WHERE {where}", params
    )
    return EpisodePage(
        items=[
            OverspeedEpisode(
                alarm_id=r["id"],
                vehicle_id=r["entity"],
                corridor=r["corridor"] or None,
                severity=r["severity"],
                state=r["state"],
                started_at=r["started_at"],
                last_seen=r["last_seen"],
                cleared_at=utc(r["cleared_at"]),
                max_speed_kmh=r["value"],
                limit_kmh=r["limit_kmh"],
            )
            for r in rows
        ],
        total=int(total[0]["n"]),
        limit=limit,
        offset=offset,
    )


_LATEST_FIELDS = (
    "ts",
    "label",
    "route_id",
    "corridor",
    "trip_id",
    "lat",
    "lon",
    "bearing",
    "speed_kmh",
    "occupancy",
    "source",
    "kecamatan",
)
_POSITION_SQL = f"SELECT vehicle_id, {', '.join(_LATEST_FIELDS)} FROM {ddl.POSITIONS}"


def _position(r: dict[str, Any]) -> Position:
    return Position(
        **{
            **r,
            "ts": utc(r["ts"]),
            "occupancy": r["occupancy"] or None,
            "kecamatan": r["kecamatan"] or None,
        }
    )


@router.get("/vehicles", response_model=list[Position], summary="Latest position of each vehicle")
async def vehicles(
    warehouse: WarehouseDep,
    corridor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 200,
    offset: Offset = 0,
) -> list[Position]:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    cond = "bad_fix = 0"
    if corridor:
        cond += " AND corridor = {corridor:String}"
        params["corridor"] = corridor
    rows = await run_query(
        warehouse,
        f"SELECT vehicle_id, argMax(tuple({', '.join(_LATEST_FIELDS)}), ts) AS t"
        f" FROM {ddl.POSITIONS} WHERE {cond} GROUP BY vehicle_id ORDER BY vehicle_id"
        " LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        params,
    )
    return [
        _position({"vehicle_id": r["vehicle_id"], **dict(zip(_LATEST_FIELDS, r["t"], strict=True))})
        for r in rows
    ]


@router.get("/vehicles/{vehicle_id}", response_model=VehicleDetail, summary="A vehicle now")
async def vehicle(
    warehouse: WarehouseDep,
    vehicle_id: VehicleId,
    windows: Annotated[int, Query(ge=0, le=1440, description="recent 1-minute windows")] = 30,
) -> VehicleDetail:
    latest = await run_query(
        warehouse,
        _POSITION_SQL + " WHERE vehicle_id = {v:String} AND bad_fix = 0 ORDER BY ts DESC LIMIT 1",
        {"v": vehicle_id},
    )
    if not latest:
        raise HTTPException(404, f"no positions for vehicle {vehicle_id!r}")
    rows = await run_query(
        warehouse,
        "SELECT window_start, corridor, positions, mean_speed_kmh, max_speed_kmh,"
        f" seconds_over_limit, limit_kmh FROM {ddl.VEHICLE_1M} FINAL"
        " WHERE vehicle_id = {v:String} ORDER BY window_start DESC LIMIT {n:UInt32}",
        {"v": vehicle_id, "n": windows},
    )
    return VehicleDetail(
        vehicle_id=vehicle_id,
        latest=_position(latest[0]),
        windows=[VehicleWindow(**{**r, "window_start": utc(r["window_start"])}) for r in rows],
    )


@router.get(
    "/corridors/{corridor}/windows",
    response_model=list[CorridorWindow],
    summary="1-minute windows of a corridor",
)
async def corridor_windows(
    request: Request,
    warehouse: WarehouseDep,
    corridor: Annotated[str, Path(min_length=1, max_length=64)],
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 60,
) -> list[CorridorWindow]:
    since, until = local_range(request, since, until)
    conds = ["corridor = {c:String}"]
    params: dict[str, Any] = {"c": corridor, "limit": limit}
    if since:
        conds.append("window_start >= {since:DateTime('UTC')}")
        params["since"] = since
    if until:
        conds.append("window_start < {until:DateTime('UTC')}")
        params["until"] = until
    rows = await run_query(
        warehouse,
        f"SELECT * FROM {ddl.CORRIDOR_1M} WHERE {_where(conds)}"
        " ORDER BY window_start DESC LIMIT {limit:UInt32}",
        params,
    )
    return [CorridorWindow(**{**r, "window_start": utc(r["window_start"])}) for r in rows]


def context_of(raw: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
