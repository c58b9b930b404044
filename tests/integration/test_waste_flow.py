"""Garbage trucks → Kafka (tansu) → worker → ClickHouse (chdb) → API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.waste_simulator import WasteSimulator
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from schemas.waste import load_sites
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import api_client, eventually, running_worker

pytestmark = pytest.mark.integration


async def test_trucks_trips_and_idle_alarm_end_to_end(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    day = datetime.now(UTC).date() - timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()  # 07:00 WIB yesterday
    sim = WasteSimulator(
        load_sites(), seed=3, trucks=3, start=start, duration_s=3 * 3600, realtime=False
    )
    async with running_worker(settings, broker.bootstrap, wh):
        await run_connector(sim, broker.bootstrap)
        async with api_client(settings, wh, broker.bootstrap) as api:

            async def trucks() -> list:  # type: ignore[type-arg]
                rows = (await api.get("/v1/waste/trucks")).json()
                return rows if len(rows) == 3 and sum(r["fixes"] for r in rows) == 3 * 360 else []

            rows = await eventually(trucks, 60, "daily totals of every truck")
            broken = sim.truth[0].truck_id
            assert all(r["tpa_trips"] == 1 and r["km"] > 5 for r in rows if r["truck_id"] != broken)
            events = (
                await api.get("/v1/waste/geofence-events", params={"site": "TPA-JATIBARANG"})
            ).json()
            assert {e["event"] for e in events} == {"enter", "exit"}
            alarms = (
                await api.get("/v1/alarms", params={"kind": "truck_idle", "state": "all"})
            ).json()["items"]
            assert [(a["entity"], a["state"]) for a in alarms] == [(broken, "cleared")]
            assert len((await api.get("/v1/waste/sites")).json()) == 5
