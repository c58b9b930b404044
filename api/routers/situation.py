"""The situation overview: one call with the live state of every domain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import WarehouseDep, run_query, utc
from api.routers.procurement import situation_counts as procurement_counts
from schemas import clickhouse_ddl as ddl

router = APIRouter(prefix="/v1", tags=["situation"])

# Each source: the table that receives its events and the column holding their time.
SOURCES: dict[str, tuple[str, str]] = {
    "transit.vehicle-positions": (ddl.POSITIONS, "ts"),
    "flood.gauge-readings": (ddl.GAUGE_READINGS, "ts"),
    "flood.citizen-reports": (ddl.FLOOD_REPORTS, "ts"),
    # An open window ends in the future: its newest event is no later than now.
    "traffic.observations": (ddl.TRAFFIC_5M, "least(window_start + INTERVAL 5 MINUTE, now64(3))"),
    "cctv.events": (ddl.CCTV_EVENTS, "ts"),
    "procurement.tender-events": (ddl.PROCUREMENT_EVENTS, "ts"),
    "waste.truck-positions": (ddl.TRUCK_DAILY, "updated_at"),
    "prices.observations": (ddl.PRICE_OBSERVATIONS, "observed_at"),
    "reports.events": (ddl.REPORT_EVENTS, "ts"),
}


class Freshness(BaseModel):
    source: str
    last_event_at: datetime | None
    age_s: float | None


class ConnectorStatus(BaseModel):
    connector: str
    state: str = Field(description="of its newest instance: running, finished or stopped")
    last_event_at: datetime | None
    silent_s: float | None = Field(description="time since its last published event")
    last_heartbeat_at: datetime
    heartbeat_age_s: float
    events_total: int = Field(description="published by the instances still remembered")


class Situation(BaseModel):
    generated_at: datetime
    active_alarms: dict[str, dict[str, int]]
    counts: dict[str, dict[str, Any]]
    freshness: list[Freshness] = Field(description="per topic, from the newest stored event")
    connectors: list[ConnectorStatus] = Field(description="per connector, from its heartbeats")


async def _connectors(warehouse: WarehouseDep, now: datetime) -> list[ConnectorStatus]:
    out = []
    for r in await run_query(
        warehouse,
        f"SELECT connector, argMax(state, started_at) AS state, max(last_event_at) AS last_event,"
        f" max(heartbeat_at) AS heartbeat, sum(events_total) AS events"
        f" FROM {ddl.SOURCE_STATUS} FINAL GROUP BY connector ORDER BY connector",
    ):
        last, beat = utc(r["last_event"]), utc(r["heartbeat"])
        assert beat is not None
        out.append(
            ConnectorStatus(
                connector=r["connector"],
                state=r["state"],
                last_event_at=last,
                silent_s=(now - last).total_seconds() if last else None,
                last_heartbeat_at=beat,
                heartbeat_age_s=(now - beat).total_seconds(),
                events_total=int(r["events"]),
            )
        )
    return out


async def _scalar(warehouse: WarehouseDep, sql: str) -> Any:
    rows = await run_query(warehouse, sql)
    return next(iter(rows[0].values())) if rows else None


@router.get(
    "/situation", response_model=Situation, summary="Live state of every domain in one call"
)
async def situation(warehouse: WarehouseDep) -> Situation:
    now = datetime.now(UTC)
    alarms: dict[str, dict[str, int]] = {}
    for r in await run_query(
        warehouse,
        f"SELECT domain, severity, count() AS n FROM {ddl.ALARMS} FINAL WHERE state != 'cleared' GROUP BY domain, severity",
    ):
        alarms.setdefault(r["domain"] or "unknown", {})[r["severity"]] = int(r["n"])
    freshness = []
    for source, (table, column) in SOURCES.items():
        last = utc(
            await _scalar(warehouse, f"SELECT max({column}) FROM {table} HAVING count() > 0")
        )
        freshness.append(
            Freshness(
                source=source,
                last_event_at=last,
                age_s=(now - last).total_seconds() if last else None,
            )
        )
    flood = {r["status"]: int(r["n"]) for r in await run_query(
        warehouse, f"SELECT status, count() AS n FROM {ddl.FLOOD_STATUS} FINAL GROUP BY status")}  # fmt: skip
    traffic = {r["congestion"]: int(r["n"]) for r in await run_query(
        warehouse,
        f"SELECT congestion, count() AS n FROM (SELECT segment_id, argMax(congestion, window_start) AS congestion"
        f" FROM {ddl.TRAFFIC_5M} FINAL GROUP BY segment_id) GROUP BY congestion")}  # fmt: skip
    counts = {
        "transit": {
            "vehicles_last_10_min": int(
                await _scalar(
                    warehouse,
                    f"SELECT uniqExact(vehicle_id) FROM {ddl.POSITIONS}"
                    f" WHERE ts > (SELECT max(ts) FROM {ddl.POSITIONS}) - INTERVAL 10 MINUTE",
                )
                or 0
            )
        },
        "flood": {"kecamatan_by_status": flood},
        "traffic": {"segments_by_congestion": traffic},
        "procurement": await procurement_counts(warehouse),
        "cctv": {
            "open_incidents": int(
                await _scalar(
                    warehouse,
                    f"SELECT count() FROM {ddl.CCTV_INCIDENTS} FINAL WHERE state = 'open'",
                )
                or 0
            )
        },
        "waste": {
            "tpa_trips_last_day": int(
                await _scalar(
                    warehouse,
                    f"SELECT sum(tpa_trips) FROM {ddl.TRUCK_DAILY} FINAL"
                    f" WHERE day = (SELECT max(day) FROM {ddl.TRUCK_DAILY})",
                )
                or 0
            )
        },
        "prices": {
            k: int(v or 0)
            for r in await run_query(
                warehouse,
                f"SELECT uniqExactIf(market_id, day = (SELECT max(day) FROM {ddl.PRICES_DAILY}"
                f" WHERE city = 'kota-semarang')) AS markets_reporting_last_day,"
                f" uniqExact(commodity_id) AS commodities"
                f" FROM {ddl.PRICES_DAILY} FINAL WHERE city = 'kota-semarang'",
            )
            for k, v in r.items()
        },
        "reports": {
            k: int(v)
            for r in await run_query(
                warehouse,
                f"SELECT countIf(status NOT IN ('resolved', 'rejected')) AS open,"
                f" countIf(status NOT IN ('resolved', 'rejected') AND due_at < now64(3))"
                f" AS overdue_open FROM {ddl.CITIZEN_REPORTS} FINAL",
            )
            for k, v in r.items()
        },
        "dead_letters": {
            "last_hour_by_source": {
                r["source"]: int(r["n"])
                for r in await run_query(
                    warehouse,
                    f"SELECT if(source_topic != '', source_topic, connector) AS source,"
                    f" count() AS n FROM {ddl.DEAD_LETTERS} FINAL"
                    f" WHERE received_at >= now64(3) - INTERVAL 1 HOUR GROUP BY source",
                )
            }
        },
    }
    return Situation(
        generated_at=now,
        active_alarms=alarms,
        counts=counts,
        freshness=freshness,
        connectors=await _connectors(warehouse, now),
    )
