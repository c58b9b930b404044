"""Security cameras: cameras, incidents, counts per area."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import UtcDatetime, WarehouseDep, run_query
from schemas import clickhouse_ddl as ddl
from schemas.cctv import EventKind, load_cameras
from schemas.spatial import gazetteer

router = APIRouter(prefix="/v1/cctv", tags=["cctv"])


class CameraOut(BaseModel):
    id: str
    name: str
    lat: float
    lon: float
    kecamatan: str | None


class IncidentOut(BaseModel):
    incident_id: str
    camera_id: str
    kind: str
    kecamatan: str
    started_at: UtcDatetime
    last_seen: UtcDatetime
    events: int
    max_confidence: float
    state: str


@router.get("/cameras", response_model=list[CameraOut])
async def cameras() -> list[CameraOut]:
    g = gazetteer()
    return [CameraOut(id=c.id, name=c.name, lat=c.lat, lon=c.lon, kecamatan=g.kecamatan.at(c.lon, c.lat))
            for c in load_cameras().cameras]  # fmt: skip


@router.get("/incidents", response_model=list[IncidentOut], summary="Incidents, newest first")
async def incidents(
    warehouse: WarehouseDep,
    kind: EventKind | None = None,
    camera: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[IncidentOut]:
    conds, params = ["1"], {"limit": limit}
    for name, value in (
        ("kind", kind.value if kind else None),
        ("camera_id", camera),
        ("state", state),
    ):
        if value:
            conds.append(f"{name} = {{{name}:String}}")
            params[name] = value  # type: ignore[assignment]
    rows = await run_query(
        warehouse,
        f"SELECT {', '.join(ddl.INCIDENT_COLUMNS[:-1])} FROM {ddl.CCTV_INCIDENTS} FINAL"
        f" WHERE {' AND '.join(conds)} ORDER BY last_seen DESC LIMIT {{limit:UInt32}}",
        params,
    )
    return [IncidentOut(**r) for r in rows]


@router.get("/counts", summary="Incidents per kecamatan and kind over the last hours (of data)")
async def counts(
    warehouse: WarehouseDep, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24
) -> list[dict[str, Any]]:
    return await run_query(
        warehouse,
        f"SELECT kecamatan, kind, count() AS incidents, sum(events) AS events FROM {ddl.CCTV_INCIDENTS} FINAL"
        f" WHERE started_at >= (SELECT max(last_seen) FROM {ddl.CCTV_INCIDENTS}) - toIntervalSecond({{s:UInt32}})"
        " GROUP BY kecamatan, kind ORDER BY incidents DESC, kecamatan, kind",
        {"s": int(hours * 3600)},
    )
