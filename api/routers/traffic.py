"""Traffic: road segments with their latest 5-minute window, and window history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from api.deps import UtcDatetime, WarehouseDep, run_query
from schemas import clickhouse_ddl as ddl
from schemas.spatial import gazetteer
from schemas.traffic import load_segments

router = APIRouter(prefix="/v1/traffic", tags=["traffic"])


class Window(BaseModel):
    window_start: UtcDatetime
    observations: int
    volume: int
    mean_speed_kmh: float | None
    occupancy_pct: float | None
    speed_ratio: float | None
    congestion: str


class SegmentOut(BaseModel):
    id: str
    road: str
    name: str
    lat: float
    lon: float
    kecamatan: str | None
    free_flow_kmh: float
    latest: Window | None


_WINDOW = (
    "window_start, observations, volume, mean_speed_kmh, occupancy_pct, speed_ratio, congestion"
)


@router.get(
    "/segments",
    response_model=list[SegmentOut],
    summary="Segments with their latest 5-minute window",
)
async def segments(warehouse: WarehouseDep) -> list[SegmentOut]:
    rows = await run_query(
        warehouse,
        # FINAL: a corrected window has several versions until a merge; read the newest.
        f"SELECT segment_id, argMax(tuple({_WINDOW}), window_start) AS w"
        f" FROM {ddl.TRAFFIC_5M} FINAL GROUP BY segment_id",
    )
    names = _WINDOW.split(", ")
    latest = {r["segment_id"]: Window(**dict(zip(names, r["w"], strict=True))) for r in rows}
    g = gazetteer()
    return [
        SegmentOut(
            id=s.id,
            road=s.road,
            name=s.name,
            lat=s.lat,
            lon=s.lon,
            kecamatan=g.kecamatan.at(s.lon, s.lat),
            free_flow_kmh=s.free_flow_kmh,
            latest=latest.get(s.id),
        )
        for s in load_segments().segments
    ]


@router.get(
    "/segments/{segment_id}/windows",
    response_model=list[Window],
    summary="5-minute windows, newest first",
)
async def windows(
    warehouse: WarehouseDep,
    segment_id: Annotated[str, Path(min_length=1, max_length=64)],
    limit: Annotated[int, Query(ge=1, le=2016)] = 288,
) -> list[Window]:
    if segment_id not in load_segments().by_id():
        raise HTTPException(404, f"no segment {segment_id!r}")
    rows: list[dict[str, Any]] = await run_query(
        warehouse,
        f"SELECT {_WINDOW} FROM {ddl.TRAFFIC_5M} FINAL WHERE segment_id = {{s:String}}"
        " ORDER BY window_start DESC LIMIT {limit:UInt32}",
        {"s": segment_id, "limit": limit},
    )
    return [Window(**r) for r in rows]
