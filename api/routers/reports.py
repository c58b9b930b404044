"""Citizen reports: intake, what department staff list and move, counts.

Writes go to Kafka (the worker is the authority on each report's lifecycle); reads come
from ClickHouse, so a report is listed, and can be moved, once the worker has stored it
(usually within a second or two).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field, HttpUrl

from api.auth import authorize, may_read
from api.deps import UtcDatetime, WarehouseDep, local_utc, publish, run_query, utc
from api.privacy import EVENT_PERSONAL_COLUMNS, REPORT_PERSONAL_COLUMNS, public_row
from schemas import clickhouse_ddl as ddl
from schemas.access import Role
from schemas.catalog import REPORT_CONTACTS, REPORT_EVENTS
from schemas.reports import (
    MAX_PHOTOS,
    TERMINAL,
    ReportContact,
    ReportEvent,
    ReportStatus,
    Routing,
    allowed_next,
    load_routing,
    transition_problem,
)
from schemas.spatial import gazetteer

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/reports", tags=["reports"])

ReportId = Annotated[str, Path(min_length=1, max_length=64)]
_CLOSED = "('resolved', 'rejected')"


def get_routing(request: Request) -> Routing:
    return load_routing(request.app.state.settings.report_routing)


RoutingDep = Annotated[Routing, Depends(get_routing)]


def _unprocessable(field: str, msg: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body", field], "msg": msg, "type": "value_error"}])


class Reporter(BaseModel):
    """Who reported: stored apart from the report, never in analysts' tables."""

    name: str | None = Field(None, max_length=128)
    phone: str | None = Field(None, max_length=32, pattern=r"^\+?[0-9 ()-]{6,32}$")
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ReportIn(BaseModel):
    category: str = Field(min_length=1, max_length=64, description="a category id, see /categories")
    text: str = Field(min_length=1, max_length=4000)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    photo_urls: list[HttpUrl] = Field(default_factory=list, max_length=MAX_PHOTOS)
    reporter: Reporter | None = None
    channel: str = Field("api", min_length=1, max_length=64)
    timestamp: datetime | None = Field(None, description="when the citizen reported; default now")


class ReportAccepted(BaseModel):
    report_id: str
    status: str
    category: str
    department: str
    kecamatan: str
    sla_hours: float
    due_at: datetime


class StatusIn(BaseModel):
    status: ReportStatus
    department: str | None = Field(
        None, max_length=128, description="for assigned: the department taking the report"
    )
    note: str | None = Field(None, max_length=2000)
    actor: str = Field(min_length=1, max_length=128, description="who makes the change")


class StatusAccepted(BaseModel):
    report_id: str
    status: str
    department: str


STAFF_ONLY = "null (photo_urls empty) unless the caller has the staff role"


class ReportOut(BaseModel):
    report_id: str
    version: int
    status: str
    category: str
    department: str
    kecamatan: str
    text: str | None = Field(description=f"the citizen's words; {STAFF_ONLY}")
    lat: float | None = Field(description=f"exact point; {STAFF_ONLY}")
    lon: float | None = Field(description=f"exact point; {STAFF_ONLY}")
    photo_urls: list[str] = Field(description=f"photos; {STAFF_ONLY}")
    channel: str
    received_at: UtcDatetime
    updated_at: UtcDatetime
    due_at: UtcDatetime
    closed_at: UtcDatetime | None
    last_actor: str | None = Field(description=f"who last moved it; {STAFF_ONLY}")
    last_note: str | None = Field(description=f"{STAFF_ONLY}")
    overdue: bool = Field(description="open past its due time, or closed after it")


class ReportPage(BaseModel):
    items: list[ReportOut]
    total: int
    limit: int
    offset: int


class EventOut(BaseModel):
    seq: int
    ts: UtcDatetime
    kind: str
    department: str
    actor: str | None = Field(description=STAFF_ONLY)
    note: str | None = Field(description=STAFF_ONLY)
    source: str


class ReportDetail(ReportOut):
    events: list[EventOut]
    allowed_next: list[str]


class CountBy(StrEnum):
    KECAMATAN = "kecamatan"
    CATEGORY = "category"
    DEPARTMENT = "department"


class CountOut(BaseModel):
    key: str
    total: int
    open: int
    overdue_open: int
    resolved: int
    rejected: int


def _out(r: dict[str, Any], now: datetime, full: bool = True) -> dict[str, Any]:
    due, closed = utc(r["due_at"]), utc(r["closed_at"])
    assert due is not None
    if not full:
        r = public_row(r, REPORT_PERSONAL_COLUMNS)
    return {**r, "overdue": (closed or now) > due}


@router.get("/categories", summary="Report categories with their department and SLA")
async def categories(routing: RoutingDep) -> list[dict[str, Any]]:
    return [c.model_dump() for c in routing.categories]


@router.post("", status_code=202, response_model=ReportAccepted, summary="File a citizen report")
async def file_report(request: Request, body: ReportIn, routing: RoutingDep) -> ReportAccepted:
    category = routing.get(body.category)
    if category is None:
        known = ", ".join(c.id for c in routing.categories)
        raise _unprocessable("category", f"unknown category {body.category!r}; known: {known}")
    kecamatan = gazetteer().kecamatan.at(body.lon, body.lat)
    if kecamatan is None:
        raise HTTPException(
            422,
            [{"loc": ["body", f], "msg": "location is outside Kota Semarang", "type": "value_error"}
             for f in ("lat", "lon")],
        )  # fmt: skip
    now = datetime.now(UTC)
    ts = local_utc(request, body.timestamp) or now
    if ts > now + timedelta(minutes=5):
        raise _unprocessable("timestamp", "timestamp is in the future")
    report_id = str(uuid.uuid4())
    if body.reporter is not None:
        contact = ReportContact(report_id=report_id, timestamp=ts, channel=body.channel,
                                **body.reporter.model_dump())  # fmt: skip
        if not contact.is_empty():
            await publish(
                request, REPORT_CONTACTS.name, report_id, contact.model_dump_json().encode()
            )
    event = ReportEvent(
        report_id=report_id, kind=ReportStatus.RECEIVED, timestamp=ts, category=category.id,
        text=body.text, lat=body.lat, lon=body.lon, photo_urls=body.photo_urls,
        channel=body.channel, source="api",
    )  # fmt: skip
    await publish(request, REPORT_EVENTS.name, report_id, event.model_dump_json().encode())
    return ReportAccepted(
        report_id=report_id, status=ReportStatus.RECEIVED.value, category=category.id,
        department=category.department, kecamatan=kecamatan, sla_hours=category.sla_hours,
        due_at=ts + timedelta(hours=category.sla_hours),
    )  # fmt: skip


@router.get("", response_model=ReportPage, summary="Reports, newest first (what staff work on)")
async def list_reports(
    request: Request,
    warehouse: WarehouseDep,
    department: Annotated[str | None, Query(max_length=128)] = None,
    status: ReportStatus | None = None,
    kecamatan: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReportPage:
    conds, params = ["1"], {"limit": limit, "offset": offset}
    for name, value in (("department", department), ("status", status.value if status else None),
                        ("kecamatan", kecamatan), ("category", category)):  # fmt: skip
        if value:
            conds.append(f"{name} = {{{name}:String}}")
            params[name] = value  # type: ignore[assignment]
    if open_only:
        conds.append(f"status NOT IN {_CLOSED}")
    where = " AND ".join(conds)
    rows = await run_query(
        warehouse,
        f"SELECT {', '.join(ddl.CITIZEN_REPORT_COLUMNS)} FROM {ddl.CITIZEN_REPORTS} FINAL"
        f" WHERE {where} ORDER BY received_at DESC, report_id"
        " LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        params,
    )
    total = await run_query(
        warehouse, f"SELECT count() AS n FROM {ddl.CITIZEN_REPORTS} FINAL WHERE {where}", params
    )
    now, full = datetime.now(UTC), may_read(request, Role.STAFF)
    return ReportPage(items=[ReportOut(**_out(r, now, full)) for r in rows],
                      total=int(total[0]["n"]) if total else 0, limit=limit, offset=offset)  # fmt: skip


@router.get(
    "/counts",
    response_model=list[CountOut],
    summary="Reports per kecamatan, category or department",
)
async def counts(
    request: Request,
    warehouse: WarehouseDep,
    by: CountBy = CountBy.KECAMATAN,
    since: Annotated[datetime | None, Query(description="received at or after (ISO 8601)")] = None,
) -> list[CountOut]:
    cond, params = "1", {}
    if since is not None:
        cond, params = (
            "received_at >= {since:DateTime64(3, 'UTC')}",
            {"since": local_utc(request, since)},
        )
    rows = await run_query(
        warehouse,
        f"SELECT {by.value} AS key, count() AS total,"
        f" countIf(status NOT IN {_CLOSED}) AS open,"
        f" countIf(status NOT IN {_CLOSED} AND due_at < now64(3)) AS overdue_open,"
        " countIf(status = 'resolved') AS resolved, countIf(status = 'rejected') AS rejected"
        f" FROM {ddl.CITIZEN_REPORTS} FINAL WHERE {cond} GROUP BY key ORDER BY total DESC, key",
        params,
    )
    return [CountOut(**r) for r in rows]


async def _current(warehouse: WarehouseDep, report_id: str) -> dict[str, Any]:
    rows = await run_query(
        warehouse,
        f"SELECT {', '.join(ddl.CITIZEN_REPORT_COLUMNS)} FROM {ddl.CITIZEN_REPORTS} FINAL"
        " WHERE report_id = {id:String}",
        {"id": report_id},
    )
    if not rows:
        raise HTTPException(404, f"no report {report_id!r} (a new report appears within seconds)")
    return rows[0]


@router.get("/{report_id}", response_model=ReportDetail, summary="One report with its events")
async def get_report(
    request: Request, warehouse: WarehouseDep, report_id: ReportId
) -> ReportDetail:
    row = await _current(warehouse, report_id)
    events = await run_query(
        warehouse,
        f"SELECT seq, ts, kind, department, actor, note, source FROM {ddl.REPORT_EVENTS} FINAL"
        " WHERE report_id = {id:String} ORDER BY seq",
        {"id": report_id},
    )
    status = ReportStatus(row["status"])
    full = may_read(request, Role.STAFF)
    if not full:
        events = [public_row(e, EVENT_PERSONAL_COLUMNS) for e in events]
    return ReportDetail(
        **_out(row, datetime.now(UTC), full),
        events=[EventOut(**e) for e in events],
        allowed_next=[s.value for s in allowed_next(status)],
    )


@router.post("/{report_id}/status", status_code=202, response_model=StatusAccepted,
             summary="Move a report through its lifecycle")  # fmt: skip
async def move_report(
    request: Request, warehouse: WarehouseDep, routing: RoutingDep, report_id: ReportId,
    body: StatusIn,
) -> StatusAccepted:  # fmt: skip
    caller = authorize(request, Role.REPORTS)
    if body.department is not None and body.department not in routing.departments:
        raise _unprocessable("department", f"unknown department {body.department!r}")
    row = await _current(warehouse, report_id)
    if caller.department is not None and row["department"] != caller.department:
        raise HTTPException(
            403, f"report {report_id} belongs to {row['department']}, not {caller.department}"
        )
    current = ReportStatus(row["status"])
    problem = transition_problem(current, body.status, row["department"], body.department)
    if problem:
        raise HTTPException(409, problem)
    department = (
        body.department
        if body.status is ReportStatus.ASSIGNED and body.department
        else row["department"]
    )
    event = ReportEvent(
        report_id=report_id, kind=body.status, timestamp=datetime.now(UTC),
        department=body.department, actor=caller.name or body.actor, note=body.note,
        actor_department=caller.department, channel="api", source="api",
    )  # fmt: skip
    await publish(request, REPORT_EVENTS.name, report_id, event.model_dump_json().encode())
    log.info("report moved", extra={"report_id": report_id, "status": body.status.value,
                                    "closed": body.status in TERMINAL})  # fmt: skip
    return StatusAccepted(report_id=report_id, status=body.status.value, department=department)
