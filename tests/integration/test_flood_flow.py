"""Flood gauges over real MQTT (Mosquitto) → bridge → Kafka (tansu) → worker → ClickHouse → API."""

from __future__ import annotations

import asyncio
import time
import uuid
from xml.etree import ElementTree

import aiomqtt
import pytest

from connectors.flood_simulator import FloodSimulator
from connectors.mqtt_bridge import MqttBridge, flood_route
from connectors.publisher import KafkaPublisher
from schemas.catalog import DEAD_LETTER
from schemas.flood import StationRegistry, load_stations
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.cap_schema import assert_valid_cap
from tests.integration.conftest import api_client, eventually, running_worker
from tests.integration.test_bad_input_and_gtfs import read_topic

pytestmark = pytest.mark.integration

MQTT = ("127.0.0.1", 1883)  # Mosquitto runs on every machine of this project (see README)
SILENT = "SRINGIN-TERBOYO"


def worker_registry() -> StationRegistry:
    """The registry as the worker sees it: silence is wall time since a station's last
    reading, measured in its cadences, so the gauge that stops is expected every 2 s (silent
    long after 24 s of wall time) and the others every 10 minutes or more (never silent
    while this test runs, though the replay ends for them too)."""
    full = load_stations()
    stations = [
        s.model_copy(update={"cadence_s": 2.0 if s.id == SILENT else max(s.cadence_s, 600.0)})
        for s in full.stations
    ]
    return full.model_copy(update={"stations": stations})


async def test_flood_gauges_over_mqtt_end_to_end(
    broker: EmbeddedBroker,
    clean_warehouse: Warehouse,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wh = clean_warehouse
    monkeypatch.setattr("sitroom.runtime.load_stations", worker_registry)
    prefix = f"test-{uuid.uuid4().hex[:8]}"  # keep clear of a running `sitroom up`
    start = (int(time.time()) // 3600 - 4) * 3600
    sim = FloodSimulator(load_stations(), seed=3, interval_s=60, start=start, event_delay_s=600,
                         silent_after_s=1800, garbage_every=97, prefix=prefix)  # fmt: skip
    async with running_worker(settings, broker.bootstrap, wh):
        bridge = MqttBridge("mqtt://127.0.0.1:1883", flood_route(prefix))
        bridge_task = asyncio.create_task(run_connector(bridge, broker.bootstrap))
        try:
            await asyncio.wait_for(bridge.subscribed.wait(), 15)
            publisher = KafkaPublisher(broker.bootstrap, "test-flood")
            await publisher.start()
            try:
                sent = await sim.run(*MQTT, publisher, duration_s=5700, realtime=False)
            finally:
                await publisher.stop()
            async with aiomqtt.Client(*MQTT) as client:
                stamp = (
                    '"timestamp": "'
                    + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 5700))
                    + '"'
                )
                await client.publish(
                    f"{prefix}/flood/NOPE-1/level", '{"value": 10, ' + stamp + "}", qos=1
                )
                await client.publish(
                    f"{prefix}/flood/BKB-MUARA/level", '{"value": -40, ' + stamp + "}", qos=1
                )
            garbage = sent // 97

            async def readings_stored() -> bool:
                n = await wh.scalar("SELECT count() FROM flood_gauge_readings FINAL")
                return bool(n == sent - garbage)

            await eventually(readings_stored, 120, "every valid reading stored")
            async with api_client(settings, wh, broker.bootstrap) as api:

                async def flood_alarms() -> dict:  # type: ignore[type-arg]
                    page = (
                        await api.get(
                            "/v1/alarms", params={"domain": "flood", "state": "all", "limit": 100}
                        )
                    ).json()
                    by = {(a["kind"], a["entity"]): a for a in page["items"]}
                    # The silent gauge's episode that reached "silent long" (a gap in the
                    # replay's delivery may have raised and cleared a shorter one first).
                    long = [a for a in page["items"] if a["kind"] == "station_silent"
                            and a["entity"] == SILENT and a["level"] == "silent long"]  # fmt: skip
                    return {**by, ("station_silent", SILENT): long[0]} if long else {}

                alarms = await eventually(flood_alarms, 60, "flood alarms")
                level = alarms[("flood_level", "BKB-SIMONGAN")]
                assert level["level"] == "siaga" and level["severity"] == "major"
                detail = (await api.get(f"/v1/alarms/{level['id']}")).json()
                assert [(t["reason"], t["level"]) for t in detail["transitions"]][:2] == [
                    ("raised", "waspada"), ("escalated", "siaga"),
                ]  # fmt: skip
                rise = alarms[("flood_rise", "BKB-SIMONGAN")]
                assert rise["context"]["river"] == "Banjir Kanal Barat"
                assert rise["context"]["unit"] == "cm/h" and rise["value"] > 240  # 6 cm/min
                silent = alarms[("station_silent", SILENT)]
                assert silent["context"]["kecamatan"] == "Genuk"
                assert silent["context"]["cadence_s"] == 2.0
                assert not [k for k in alarms if k[1] not in {"BKB-SIMONGAN", SILENT}]

                status = {s["kecamatan"]: s for s in (await api.get("/v1/flood/status")).json()}
                assert status["Semarang Barat"]["status"] == "siaga"
                assert status["Semarang Barat"]["stations"] == ["BKB-SIMONGAN"]
                assert status["Semarang Barat"]["reports"] == 3
                assert status["Genuk"]["status"] == "normal"

                stations = {s["id"]: s for s in (await api.get("/v1/flood/stations")).json()}
                assert stations["BKB-SIMONGAN"]["level"] == "siaga"
                assert stations["BKB-SIMONGAN"]["kecamatan"] == "Semarang Barat"

                cap = await api.get("/v1/flood/cap")
                assert cap.headers["content-type"].startswith("application/atom+xml")
                assert assert_valid_cap(cap.content)  # every alert against the CAP 1.2 XSD
                cap_ns = "{urn:oasis:names:tc:emergency:cap:1.2}"
                alerts = ElementTree.fromstring(cap.content).iter(f"{cap_ns}alert")
                severities = {a.findtext(f"{cap_ns}info/{cap_ns}severity") for a in alerts}
                assert "Severe" in severities  # siaga
                one = await api.get(f"/v1/flood/cap/{level['id']}")
                assert_valid_cap(one.content)
                assert one.status_code == 200 and one.headers["content-type"].startswith(
                    "application/cap+xml"
                )
                alert = ElementTree.fromstring(one.content)
                assert (
                    alert.findtext(f"{cap_ns}info/{cap_ns}area/{cap_ns}areaDesc")
                    == "Kecamatan Semarang Barat, Kota Semarang"
                )
                assert alert.findtext(f"{cap_ns}status") == "Actual"

                outside = await api.post(
                    "/v1/flood/reports", json={"lat": -6.2, "lon": 106.8, "depth_cm": 20}
                )
                assert outside.status_code == 422 and "lat" in outside.text
                # No depth, as most citizens give none: accepted (Waspada evidence only).
                shallow = await api.post("/v1/flood/reports", json={"lat": -6.99, "lon": 110.42})
                assert shallow.status_code == 202
                ok = await api.post(
                    "/v1/flood/reports", json={"lat": -6.9800, "lon": 110.4380, "depth_cm": 80}
                )
                assert ok.status_code == 202 and ok.json()["kecamatan"] == "Semarang Timur"

                async def report_stored() -> bool:
                    rows = (
                        await api.get("/v1/flood/reports", params={"kecamatan": "Semarang Timur"})
                    ).json()
                    return any(r["report_id"] == ok.json()["report_id"] for r in rows)

                await eventually(report_stored, 30, "the citizen's report")
                kec = shallow.json()["kecamatan"]
                rows = (await api.get("/v1/flood/reports", params={"kecamatan": kec})).json()
                [depthless] = [r for r in rows if r["report_id"] == shallow.json()["report_id"]]
                assert depthless["depth_cm"] is None
                layer = (await api.get("/v1/layers/kecamatan")).json()
                assert len(layer["features"]) == 16

            letters = await read_topic(broker.bootstrap, DEAD_LETTER.name, garbage + 2)
            reasons = sorted(dict(r.headers)["reason"].decode() for r in letters)
            assert reasons.count("invalid_json") == garbage
            assert "unknown_entity" in reasons and "impossible_value" in reasons
        finally:
            bridge_task.cancel()
