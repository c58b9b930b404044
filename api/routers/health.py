"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.deps import WarehouseDep, get_broker_probe

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Broker and ClickHouse are reachable")
async def readyz(
    warehouse: WarehouseDep, broker_probe: Annotated[object, Depends(get_broker_probe)]
) -> JSONResponse:
    clickhouse = await warehouse.ping()
    broker = await broker_probe()  # type: ignore[operator]
    ok = bool(clickhouse and broker)
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "clickhouse": clickhouse, "broker": broker},
        status_code=200 if ok else 503,
    )
