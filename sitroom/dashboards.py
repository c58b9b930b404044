"""The analysts' Grafana dashboard (ClickHouse data source plugin), built from one list of
panels so that the test suite runs every panel's SQL against chdb and the committed JSON
cannot drift from it. Reference values (HET ceilings, gauge bands) come from the same files
the worker reads.

Regenerate after a change: ``python -m sitroom.dashboards`` (writes
deploy/grafana/dashboards/sitroom-analysts.json).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.alarm_rules import load_rules
from schemas.flood import load_stations

DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"}
OUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards"
FILE = "sitroom-analysts.json"
TIMEZONE = "Asia/Jakarta"


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    sql: str
    kind: str  # Grafana panel type
    query_type: str = "table"  # the plugin's: "table" or "timeseries"


def _text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ceilings_values() -> str:
    ceilings = load_rules().prices.ceilings
    rows = ", ".join(
        f"({_text(cid)}, {c.price_idr:.0f}, {_text(c.kind)})" for cid, c in sorted(ceilings.items())
    )
    return f"values('commodity_id String, ceiling_idr Float64, ceiling_kind String', {rows})"


def _bands_values() -> str:
    rows = ", ".join(
        f"({_text(s.id)}, {s.waspada:g}, {s.siaga:g}, {s.awas:g})"
        for s in load_stations().stations
        if s.waspada is not None and s.siaga is not None and s.awas is not None
    )
    return f"values('station_id String, waspada_cm Float64, siaga_cm Float64, awas_cm Float64', {rows})"


def panels() -> list[Panel]:
    return [
        Panel(
            "Overspeed minutes per corridor and hour",
            "Minutes buses spent above their corridor's limit, summed over the corridor's buses, per hour (WIB).",
            "SELECT toStartOfHour(window_start, 'Asia/Jakarta') AS time, corridor,\n"
            "       round(sum(seconds_over_limit) / 60, 1) AS overspeed_minutes\n"
            "FROM transit_vehicle_1m FINAL\n"
            "WHERE $__timeFilter(window_start)\n"
            "GROUP BY time, corridor\nORDER BY time, corridor",
            "timeseries",
            "timeseries",
        ),
        Panel(
            "Gauge levels with their bands",
            "River and polder levels (cm above gauge zero), 5-minute maximum per gauge, next to the gauge's Waspada / Siaga / Awas bands (flood_stations.toml).",
            "SELECT toStartOfFiveMinutes(r.ts) AS time, r.station_id,\n"
            "       max(r.value) AS level_cm, any(b.waspada_cm) AS waspada_cm,\n"
            "       any(b.siaga_cm) AS siaga_cm, any(b.awas_cm) AS awas_cm\n"
            "FROM flood_gauge_readings AS r\n"
            f"INNER JOIN (SELECT * FROM {_bands_values()}) AS b ON b.station_id = r.station_id\n"
            "WHERE r.kind = 'level' AND $__timeFilter(r.ts)\n"
            "GROUP BY time, r.station_id\nORDER BY time, r.station_id",
            "timeseries",
            "timeseries",
        ),
        Panel(
            "Congestion by segment and hour of day",
            "Share of 5-minute windows heavy or jammed, and mean speed over free-flow speed, per road segment and hour of day (WIB).",
            "SELECT segment_id, any(road) AS road, toHour(window_start, 'Asia/Jakarta') AS hour_wib,\n"
            "       round(countIf(congestion IN ('heavy', 'jammed')) / count(), 3) AS congested_share,\n"
            "       round(avg(speed_ratio), 3) AS speed_ratio, sum(volume) AS vehicles\n"
            "FROM traffic_segment_5m FINAL\n"
            "WHERE $__timeFilter(window_start)\n"
            "GROUP BY segment_id, hour_wib\nORDER BY segment_id, hour_wib",
            "table",
        ),
        Panel(
            "Prices against HET per market and commodity",
            "Each market's latest daily price in the range against the commodity's government ceiling (HET) or reference price (HAP) from the rule book.",
            "SELECT p.market_id, p.commodity_id, c.ceiling_kind,\n"
            "       argMax(p.price_idr, p.day) AS price_idr, any(c.ceiling_idr) AS ceiling_idr,\n"
            "       round(price_idr / ceiling_idr, 3) AS price_to_ceiling, max(p.day) AS day\n"
            "FROM prices_daily AS p FINAL\n"
            f"INNER JOIN (SELECT * FROM {_ceilings_values()}) AS c ON c.commodity_id = p.commodity_id\n"
            "WHERE p.day BETWEEN toDate($__fromTime, 'Asia/Jakarta') AND toDate($__toTime, 'Asia/Jakarta')\n"
            "GROUP BY p.market_id, p.commodity_id, c.ceiling_kind\n"
            "ORDER BY price_to_ceiling DESC",
            "table",
        ),
        Panel(
            "Reports open and past SLA per department",
            "Citizens' reports received in the range, per responsible department (OPD): still open, and open past their category's SLA (report_deadlines: no personal columns).",
            "SELECT department,\n"
            "       countIf(status NOT IN ('resolved', 'rejected')) AS open,\n"
            "       countIf(status NOT IN ('resolved', 'rejected') AND due_at < now()) AS past_sla,\n"
            "       count() AS received\n"
            "FROM report_deadlines\n"
            "WHERE $__timeFilter(received_at)\n"
            "GROUP BY department\nORDER BY past_sla DESC, open DESC",
            "table",
        ),
        Panel(
            "Procurement red flags per agency",
            "E-procurement red flags raised in the range, per agency (satuan kerja) and kind of flag.",
            "SELECT agency_name, flag, count() AS flags, uniqExact(tender_key) AS tenders\n"
            "FROM procurement_flags FINAL\n"
            "WHERE $__timeFilter(ts)\n"
            "GROUP BY agency_name, flag\nORDER BY flags DESC, agency_name",
            "table",
        ),
    ]


def grafana_sql(sql: str, start_s: int, end_s: int) -> str:
    """A panel's SQL with the data source plugin's time macros replaced as the plugin does
    for a range of Unix seconds (what a test runs)."""

    def time_filter(match: re.Match[str]) -> str:
        col = match.group(1)
        return f"{col} >= toDateTime({start_s}) AND {col} <= toDateTime({end_s})"

    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", time_filter, sql)
    return sql.replace("$__fromTime", f"toDateTime({start_s})").replace(
        "$__toTime", f"toDateTime({end_s})"
    )


def dashboard() -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for i, p in enumerate(panels()):
        out.append(
            {
                "id": i + 1,
                "type": p.kind,
                "title": p.title,
                "description": p.description,
                "datasource": DATASOURCE,
                "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 9, "w": 12, "h": 9},
                "targets": [
                    {
                        "refId": "A",
                        "datasource": DATASOURCE,
                        "editorType": "sql",
                        "queryType": p.query_type,
                        "format": 0 if p.query_type == "timeseries" else 1,
                        "rawSql": p.sql,
                    }
                ],
                "fieldConfig": {"defaults": {}, "overrides": []},
                "options": {},
            }
        )
    return {
        "uid": "sitroom-analysts",
        "title": "Sitroom - analysts (ClickHouse)",
        "description": "Semarang situation room for analysts: transit, flood gauges, traffic, "
        "market prices, citizens' reports, procurement (ClickHouse data source).",
        "tags": ["sitroom", "clickhouse", "analysts"],
        "timezone": TIMEZONE,
        "editable": False,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": out,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or [str(OUT)])[0])
    (out / FILE).write_text(render(), encoding="utf-8")
    print(out / FILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
