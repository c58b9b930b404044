"""Garbage trucks: sites, daily totals per truck, geofence events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import WarehouseDep, run_query
from schemas import clickhouse_ddl as ddl
from schemas.waste import load_sites

router = APIRouter(prefix="/v1/waste", tags=["waste"])


@router.get("/sites", summary="TPA, depots and transfer stations (geofences)")
async def sites() -> list[dict[str, Any]]:
    return [s.model_dump() for s in load_sites().sites]


@router.get("/trucks", summary="Daily kilometres and trips to the TPA per truck (local day)")
async def trucks(
    warehouse: WarehouseDep, days: Annotated[int, Query(ge=1, le=366)] = 7
) -> list[dict[str, Any]]:
    return await run_query(
        warehouse,
        f"SELECT truck_id, day, km, tpa_trips, fixes FROM {ddl.TRUCK_DAILY} FINAL"
        f" WHERE day > (SELECT max(day) FROM {ddl.TRUCK_DAILY}) - {{d:UInt32}} ORDER BY day DESC, truck_id",
        {"d": days},
    )


@router.get("/geofence-events", summary="Enter/exit events, newest first")
async def geofence_events(
    warehouse: WarehouseDep,
    truck: Annotated[str | None, Query(max_length=64)] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    conds, params = ["1"], {"limit": limit}
    for name, value in (("truck_id", truck), ("site_id", site)):
        if value:
            conds.append(f"{name} = {{{name}:String}}")
            params[name] = value  # type: ignore[assignment]
    return await run_query(
        warehouse,
        f"SELECT {', '.join(ddl.GEOFENCE_COLUMNS)} FROM {ddl.GEOFENCE_EVENTS} FINAL"
        f" WHERE {' AND '.join(conds)} ORDER BY ts DESC LIMIT {{limit:UInt32}}",
        params,
    )
