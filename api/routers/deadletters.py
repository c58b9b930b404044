"""Dead letters: what the room refused, why, and from where."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import may_read
from api.deps import UtcDatetime, WarehouseDep, run_query
from api.privacy import public_row
from schemas import clickhouse_ddl as ddl
from schemas.access import Role

router = APIRouter(prefix="/v1/deadletters", tags=["dead letters"])


class LetterOut(BaseModel):
    received_at: UtcDatetime
    reason: str
    detail: str
    source_topic: str = Field(description="empty when a connector refused a source record")
    source_partition: int | None
    source_offset: int | None
    item_index: int | None
    connector: str = Field(description="empty when the worker refused an event")
    location: str = Field(description="where in the source, e.g. file:line")
    raw: str | None = Field(
        description="the original bytes as text, cut to `raw_chars`; null unless the caller "
        "has the staff role (a refused citizen's report holds their words and contacts)"
    )
    raw_bytes: int


class LetterCount(BaseModel):
    reason: str
    source: str = Field(description="topic, or connector for refused source records")
    letters: int
    last_at: UtcDatetime


def _filters(
    reason: str | None, topic: str | None, connector: str | None, hours: float
) -> tuple[str, dict[str, object]]:
    conds = ["received_at >= now64(3) - toIntervalSecond({s:UInt32})"]
    params: dict[str, object] = {"s": int(hours * 3600)}
    for column, value in (("reason", reason), ("source_topic", topic), ("connector", connector)):
        if value:
            conds.append(f"{column} = {{{column}:String}}")
            params[column] = value
    return " AND ".join(conds), params


Hours = Annotated[float, Query(gt=0, le=24 * 90, description="look back this many hours")]
Name = Annotated[str | None, Query(max_length=128)]


@router.get("", response_model=list[LetterOut], summary="Dead letters, newest first")
async def letters(
    request: Request,
    warehouse: WarehouseDep,
    reason: Name = None,
    topic: Name = None,
    connector: Name = None,
    hours: Hours = 24,
    raw_chars: Annotated[int, Query(ge=0, le=65536)] = 2000,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LetterOut]:
    where, params = _filters(reason, topic, connector, hours)
    rows = await run_query(
        warehouse,
        f"SELECT received_at, reason, detail, source_topic, source_partition, source_offset,"
        f" item_index, connector, location, substringUTF8(raw, 1, {{chars:UInt32}}) AS raw,"
        f" raw_bytes FROM {ddl.DEAD_LETTERS} FINAL WHERE {where}"
        f" ORDER BY received_at DESC, offset DESC LIMIT {{limit:UInt32}}",
        {**params, "chars": raw_chars, "limit": limit},
    )
    if not may_read(request, Role.STAFF):
        rows = [public_row(r, ("raw",)) for r in rows]
    return [LetterOut(**r) for r in rows]


@router.get(
    "/counts", response_model=list[LetterCount], summary="Dead letters per reason and source"
)
async def counts(
    warehouse: WarehouseDep,
    hours: Hours = 24,
) -> list[LetterCount]:
    where, params = _filters(None, None, None, hours)
    rows = await run_query(
        warehouse,
        f"SELECT reason, if(source_topic != '', source_topic, connector) AS source,"
        f" count() AS letters, max(received_at) AS last_at FROM {ddl.DEAD_LETTERS} FINAL"
        f" WHERE {where} GROUP BY reason, source ORDER BY letters DESC, reason, source",
        params,
    )
    return [LetterCount(**r) for r in rows]
