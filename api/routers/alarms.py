"""Alarms of every domain: the latest state of each, its history, acknowledge and clear."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from api.auth import authorize
from api.deps import UtcDatetime, WarehouseDep, publish, run_query
from api.routers.transit import context_of
from schemas import clickhouse_ddl as ddl
from schemas.access import Role
from schemas.alarms import AlarmCommand, CommandAction, Severity
from schemas.catalog import ALARM_COMMANDS, ALARM_OWNERS, may_act_on

router = APIRouter(prefix="/v1/alarms", tags=["alarms"])

AlarmId = Annotated[
    str, Path(min_length=1, max_length=256, description="e.g. overspeed/K1-02/1795822660812")
]


class StateFilter(StrEnum):
    ACTIVE = "active"
    CLEARED = "cleared"
    ALL = "all"


class AlarmOut(BaseModel):
    id: str
    kind: str
    domain: str
    entity: str
    severity: str
    level: str
    state: str
    reason: str
    started_at: UtcDatetime
    last_seen: UtcDatetime
    cleared_at: UtcDatetime | None
    value: float
    threshold: float
    version: int
    acknowledged_by: str | None
    acknowledged_at: UtcDatetime | None
    cleared_by: str | None
    context: dict[str, Any]


class AlarmPage(BaseModel):
    items: list[AlarmOut]
    total: int
    limit: int
    offset: int


class AlarmDetail(AlarmOut):
    transitions: list[AlarmOut]


class CommandIn(BaseModel):
    by: str = Field(min_length=1, max_length=128, description="who acknowledges or clears")
    note: str | None = Field(None, max_length=2000)


_COLUMNS = ", ".join(ddl.ALARM_COLUMNS)


def _alarm(r: dict[str, Any]) -> AlarmOut:
    return AlarmOut(**{**r, "context": context_of(r["context"])})


@router.get("", response_model=AlarmPage, summary="Alarms, newest first")
async def list_alarms(
    warehouse: WarehouseDep,
    state: StateFilter = StateFilter.ACTIVE,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    domain: Annotated[str | None, Query(max_length=64)] = None,
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
    for name, value in (("kind", kind), ("domain", domain), ("entity", entity)):
        if value:
            conds.append(f"{name} = {{{name}:String}}")
            params[name] = value
    if severity:
        conds.append("severity = {severity:String}")
        params["severity"] = severity.value
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


async def _latest(warehouse: WarehouseDep, alarm_id: str) -> AlarmOut:
    rows = await run_query(
        warehouse,
        f"SELECT {_COLUMNS} FROM {ddl.ALARMS} FINAL WHERE id = {{id:String}}",
        {"id": alarm_id},
    )
    if not rows:
        raise HTTPException(404, f"no alarm {alarm_id!r}")
    return _alarm(rows[0])


async def _command(
    request: Request, warehouse: WarehouseDep, alarm_id: str, action: CommandAction, body: CommandIn
) -> AlarmCommand:
    caller = authorize(request, Role.ALARMS)
    alarm = await _latest(warehouse, alarm_id)
    if not may_act_on(alarm.domain, caller.department):
        owners = ", ".join(ALARM_OWNERS.get(alarm.domain, ())) or "the room"
        raise HTTPException(
            403,
            f"{caller.name} of {caller.department} may not act on {alarm.domain} alarms "
            f"(owners: {owners})",
        )
    if alarm.state == "cleared":
        raise HTTPException(409, f"alarm {alarm_id!r} is already cleared")
    if action is CommandAction.ACKNOWLEDGE and alarm.acknowledged_by:
        raise HTTPException(409, f"alarm {alarm_id!r} was acknowledged by {alarm.acknowledged_by}")
    command = AlarmCommand(
        alarm_id=alarm_id,
        action=action,
        by=caller.name or body.by,
        note=body.note,
        at=datetime.now(UTC),
        department=caller.department,
    )
    await publish(
        request, ALARM_COMMANDS.name, command.alarm_id, command.model_dump_json().encode()
    )
    return command


@router.post(
    "/{alarm_id:path}/acknowledge",
    status_code=202,
    response_model=AlarmCommand,
    summary="Acknowledge an open alarm (applied by the worker, shown as a transition)",
    responses={
        404: {"description": "unknown alarm"},
        409: {"description": "cleared or already acknowledged"},
    },
)
async def acknowledge(
    request: Request, warehouse: WarehouseDep, alarm_id: AlarmId, body: CommandIn
) -> AlarmCommand:
    return await _command(request, warehouse, alarm_id, CommandAction.ACKNOWLEDGE, body)


@router.post(
    "/{alarm_id:path}/clear",
    status_code=202,
    response_model=AlarmCommand,
    summary="Clear an open alarm by hand",
    responses={404: {"description": "unknown alarm"}, 409: {"description": "already cleared"}},
)
async def clear(
    request: Request, warehouse: WarehouseDep, alarm_id: AlarmId, body: CommandIn
) -> AlarmCommand:
    return await _command(request, warehouse, alarm_id, CommandAction.CLEAR, body)


@router.get(
    "/{alarm_id:path}", response_model=AlarmDetail, summary="One alarm with its transitions"
)
async def get_alarm(warehouse: WarehouseDep, alarm_id: AlarmId) -> AlarmDetail:
    latest = await _latest(warehouse, alarm_id)
    history = await run_query(
        warehouse,
        f"SELECT {_COLUMNS} FROM {ddl.ALARM_TRANSITIONS} FINAL WHERE id = {{id:String}} ORDER BY version",
        {"id": alarm_id},
    )
    return AlarmDetail(**latest.model_dump(), transitions=[_alarm(r) for r in history])
