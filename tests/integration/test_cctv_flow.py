"""Camera analytics → Kafka (tansu) → worker → ClickHouse (chdb) → API."""

from __future__ import annotations

import time

import pytest

from connectors.cctv_simulator import CctvSimulator
from schemas.cctv import load_cameras
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import api_client, eventually, running_worker

pytestmark = pytest.mark.integration


async def test_camera_incidents_and_alarms_end_to_end(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    start = (int(time.time()) // 3600 - 2) * 3600
    sim = CctvSimulator(load_cameras(), seed=4, start=start, duration_s=1800, realtime=False)
    async with running_worker(settings, broker.bootstrap, wh):
        await run_connector(sim, broker.bootstrap)
        async with api_client(settings, wh, broker.bootstrap) as api:

            async def all_closed() -> list:  # type: ignore[type-arg]
                items = (await api.get("/v1/cctv/incidents")).json()
                return (
                    items if len(items) == 3 and all(i["state"] == "closed" for i in items) else []
                )

            incidents = await eventually(all_closed, 60, "the three scripted incidents, closed")
            assert {(i["camera_id"], i["kind"]) for i in incidents} == {
                (s.camera_id, s.kind.value) for s in sim.truth
            }
            crowd = next(i for i in incidents if i["kind"] == "crowd")
            assert crowd["kecamatan"] == "Semarang Selatan" and crowd["events"] == 29
            counts = (await api.get("/v1/cctv/counts")).json()
            assert sum(c["incidents"] for c in counts) == 3
            alarms = (
                await api.get("/v1/alarms", params={"domain": "cctv", "state": "all"})
            ).json()["items"]
            assert {(a["kind"], a["entity"], a["state"]) for a in alarms} == {
                ("cctv_fire_smoke", "CAM-PASARJOHAR", "cleared"),
                ("cctv_accident", "CAM-KALIGAWE", "cleared"),
                ("cctv_crowd", "CAM-SIMPANGLIMA", "cleared"),
            }
            cams = (await api.get("/v1/cctv/cameras")).json()
            assert len(cams) == 10 and all(c["kecamatan"] for c in cams)
