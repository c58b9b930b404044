"""Alarms of every domain: the latest state of each, and each one's history."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from api.deps import UtcDatetime, WarehouseDep, run_query, utc
from api.routers.transit import context_of
from schemas import clickhouse_ddl as ddl
from schemas.alarms import Severity

router = APIRouter(prefix="/v1/alarms", tags=["alarms"])


class StateFilter(StrEnum):
    ACTIVE = "active"
    CLEARED = "cleared"
    ALL = "all"


class AlarmOut(BaseModel):
    id: str
    kind: str
    entity: str
    severity: str
    state: str
    started_at: UtcDatetime
    last_seen: UtcDatetime
    cleared_at: UtcDatetime | None
    value: float
    threshold: float
    version: int
    context: dict[str, Any]


class AlarmPage(BaseModel):
    items: list[AlarmOut]
    total: int
    limit: int
    offset: int


class AlarmDetail(AlarmOut):
    transitions: list[AlarmOut]


_COLUMNS = ", ".join(ddl.ALARM_COLUMNS)


def _alarm(r: dict[str, Any]) -> AlarmOut:
    return AlarmOut(
        **{
            **r,
            "started_at": utc(r["started_at"]),
            "last_seen": utc(r["last_seen"]),
            "cleared_at": utc(r["cleared_at"]),
            "context": context_of(r["context"]),
        }
    )


@router.get("", response_model=AlarmPage, summary="Alarms, newest first")
async def list_alarms(
    warehouse: WarehouseDep,
    state: StateFilter = StateFilter.ACTIVE,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    severity: Severity | None = None,
    entity: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AlarmPage:
    conds = ["1"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if state is StateFilter.ACTIVE:
        conds.append("state != 'cleared'")
    elif state is StateFilter.CLEARED:
        conds.append("state = 'cleared'")
    if kind:
        conds.append("kind = {kind:String}")
        params["kind"] = kind
    if severity:
        conds.append("severity = {severity:String}")
        params["severity"] = severity.value
    if entity:
        conds.append("entity = {entity:String}")
        params["entity"] = entity
    where = " AND ".join(conds)
    rows = await run_query(
        warehouse,
        f"SELECT {_COLUMNS} FROM {ddl.ALARMS} FINAL WHERE {where}"
        " ORDER BY last_seen DESC, id LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        params,
    )
    total = await run_query(
        warehouse, f"SELECT count() AS n FROM {ddl.ALARMS} FINAL WHERE {where}", params
    )
    return AlarmPage(
        items=[_alarm(r) for r in rows], total=int(total[0]["n"]), limit=limit, offset=offset
    )


@router.get(
    "/{alarm_id:path}", response_model=AlarmDetail, summary="One alarm with its transitions"
)
async def get_alarm(
    warehouse: WarehouseDep, alarm_id: Annotated[str, Path(min_length=1, max_length=256)]
) -> AlarmDetail:
    rows = await run_query(
        warehouse,
        f"SELECT {_COLUMNS} FROM {ddl.ALARMS} FINAL WHERE id = {{id:String}}",
        {"id": alarm_id},
    )
    if not rows:
        raise HTTPException(404, f"no alarm {alarm_id!r}")
    history = await run_query(
        warehouse,
        f"SELECT {_COLUMNS} FROM {ddl.ALARM_TRANSITIONS} FINAL WHERE id = {{id:String}} ORDER BY version",
        {"id": alarm_id},
    )
    return AlarmDetail(**_alarm(rows[0]).model_dump(), transitions=[_alarm(r) for r in history])
