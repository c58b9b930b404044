"""Traffic detectors → Kafka (tansu) → worker → ClickHouse (chdb) → API."""

from __future__ import annotations

import time

import pytest

from connectors.traffic_simulator import TrafficSimulator
from schemas.settings import Settings
from schemas.traffic import load_segments
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import api_client, eventually, running_worker

pytestmark = pytest.mark.integration


async def test_traffic_windows_and_congestion_alarm_end_to_end(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    # 02:00-03:00 WIB: free-flowing roads, so the only congestion is the incident.
    start = (int(time.time()) // 86400 - 1) * 86400 + 19 * 3600
    # Two readings into the next hour: each segment's own clock then passes the hour's last
    # window end plus the lateness, so all twelve close without waiting on the wall clock.
    sim = TrafficSimulator(load_segments(), seed=5, start=start, duration_s=3720, realtime=False,
                           incident_delay_s=600, incident_s=1200)  # fmt: skip
    async with running_worker(settings, broker.bootstrap, wh):
        assert await run_connector(sim, broker.bootstrap) == 62 * 8

        async def all_windows() -> bool:
            return await wh.scalar("SELECT count() FROM traffic_segment_5m FINAL") == 12 * 8

        await eventually(all_windows, 60, "every 5-minute window of every segment")
        # Each holds its five readings, one version per reading: nothing counted as late.
        assert (
            await wh.scalar(
                "SELECT countIf(observations = 5 AND version = 5) FROM traffic_segment_5m FINAL"
            )
            == 12 * 8
        )
        async with api_client(settings, wh, broker.bootstrap) as api:
            segments = {s["id"]: s for s in (await api.get("/v1/traffic/segments")).json()}
            assert len(segments) == 8 and segments["KALIGAWE-RAYA"]["kecamatan"] == "Genuk"
            windows = (await api.get("/v1/traffic/segments/KALIGAWE-RAYA/windows")).json()
            levels = [w["congestion"] for w in reversed(windows)]
            assert (
                levels[:2] == ["free", "free"]
                and levels.count("jammed") == 4
                and levels[-1] == "free"
            )
            assert sum(w["volume"] for w in windows) > 0
            alarms = (
                await api.get("/v1/alarms", params={"domain": "traffic", "state": "all"})
            ).json()["items"]
            assert [(a["entity"], a["state"]) for a in alarms] == [("KALIGAWE-RAYA", "cleared")]
            history = (await api.get(f"/v1/alarms/{alarms[0]['id']}")).json()["transitions"]
            assert (history[0]["state"], history[0]["level"], history[0]["severity"]) == (
                "raised",
                "jammed",
                "major",
            )
            assert (await api.get("/v1/traffic/segments/NOPE/windows")).status_code == 404
