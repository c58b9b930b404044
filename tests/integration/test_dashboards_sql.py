"""Every panel of the analysts' Grafana dashboard runs on chdb, through the same read-only
SQL entry point Grafana reaches on the embedded default, over data the simulators made, and
returns rows for each domain they feed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from connectors.brt_simulator import BrtSimulator
from connectors.flood_simulator import FloodSimulator
from connectors.mqtt_bridge import MqttBridge, flood_route
from connectors.price_simulator import PriceSimulator
from connectors.procurement_simulator import ProcurementSimulator
from connectors.publisher import KafkaPublisher
from connectors.report_simulator import ReportSimulator
from connectors.traffic_simulator import TrafficSimulator
from schemas.flood import load_stations
from schemas.prices import load_commodities, load_markets
from schemas.reports import load_routing
from schemas.settings import Settings
from schemas.sql_engine import SqlRequest
from schemas.sql_policy import Limits
from schemas.traffic import load_segments
from schemas.warehouse import Warehouse
from sitroom import dashboards
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import eventually, running_worker

pytestmark = pytest.mark.integration

MQTT = ("127.0.0.1", 1883)  # Mosquitto runs on every machine of this project (see README)
TABLES = (
    "transit_vehicle_1m",
    "flood_gauge_readings",
    "traffic_segment_5m",
    "prices_daily",
    "report_deadlines",
    "procurement_flags",
)


def test_the_committed_dashboard_is_the_generated_one() -> None:
    committed = (dashboards.OUT / dashboards.FILE).read_text(encoding="utf-8")
    assert committed == dashboards.render(), "run: python -m sitroom.dashboards"
    panels = json.loads(committed)["panels"]
    assert [p["targets"][0]["rawSql"] for p in panels] == [p.sql for p in dashboards.panels()]
    assert all(p["datasource"]["type"] == "grafana-clickhouse-datasource" for p in panels)


async def test_every_panel_runs_on_simulated_data(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    now = time.time()
    start = (int(now) // 3600 - 2) * 3600
    prefix = f"dash-{uuid.uuid4().hex[:8]}"  # keep clear of a running `sitroom up`
    async with running_worker(settings, broker.bootstrap, wh):
        bridge = MqttBridge("mqtt://127.0.0.1:1883", flood_route(prefix))
        bridge_task = asyncio.create_task(run_connector(bridge, broker.bootstrap))
        try:
            await asyncio.wait_for(bridge.subscribed.wait(), 15)
            sources = [
                BrtSimulator(
                    seed=7,
                    buses_per_corridor=2,
                    interval_s=5.0,
                    start=start,
                    duration_s=1800,
                    realtime=False,
                ),
                TrafficSimulator(
                    load_segments(), seed=5, start=start, duration_s=1500, realtime=False
                ),
                PriceSimulator(
                    load_markets(),
                    load_commodities(),
                    seed=3,
                    start=start,
                    duration_s=1200,
                    realtime=False,
                ),
                ProcurementSimulator(
                    seed=3, start=start, duration_s=1800, realtime=False, backfill=40
                ),
                ReportSimulator(
                    load_routing(), seed=3, start=start, duration_s=3600, realtime=False
                ),
            ]
            for source in sources:
                await run_connector(source, broker.bootstrap, None)
            publisher = KafkaPublisher(broker.bootstrap, "test-flood")
            await publisher.start()
            try:
                flood = FloodSimulator(
                    load_stations(), seed=3, interval_s=60, start=start, prefix=prefix
                )
                await flood.run(*MQTT, publisher, duration_s=1800, realtime=False)
            finally:
                await publisher.stop()

            async def fed() -> dict[str, int] | None:
                counts = {t: await wh.scalar(f"SELECT count() FROM {t}") for t in TABLES}
                return counts if all(counts.values()) else None

            await eventually(fed, 90, "rows in every dashboard table")
        finally:
            bridge_task.cancel()
            await asyncio.gather(bridge_task, return_exceptions=True)

    limits = Limits(max_rows=100_000, max_seconds=30, max_memory_bytes=1 << 30)
    since, until = int(now) - 30 * 86400, int(now) + 3600
    for panel in dashboards.panels():
        sql = dashboards.grafana_sql(panel.sql, since, until)
        assert "$__" not in sql
        answer = await wh.analyst_sql(SqlRequest(sql=sql, default_format="JSON"), limits)
        rows = json.loads(answer.body)["data"]
        assert rows, f"{panel.title}: no rows"
