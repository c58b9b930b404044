"""Poison messages go to the dead-letter topic while the rest flows; GTFS-rt captures replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from connectors.gtfs_rt import GtfsRtSource
from schemas.catalog import DEAD_LETTER, VEHICLE_POSITIONS
from schemas.settings import Settings
from schemas.transit import VehiclePosition
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import api_client, eventually, running_worker

pytestmark = pytest.mark.integration

GTFS = Path(__file__).resolve().parents[1] / "fixtures" / "gtfs-rt"


async def read_topic(bootstrap: str, topic: str, n: int, timeout_s: float = 30.0) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list = []  # type: ignore[type-arg]
    try:

        async def got_all() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
            return len(records) >= n

        await eventually(got_all, timeout_s, f"{n} records on {topic}")
    finally:
        await consumer.stop()
    return records


async def test_poison_messages_are_dead_lettered_and_the_stream_goes_on(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    now = datetime.now(UTC)

    def fix(vehicle: str, minutes_ago: float, lat: float = -6.99, lon: float = 110.42) -> bytes:
        return (
            VehiclePosition(
                vehicle_id=vehicle,
                corridor="K7",
                lat=lat,
                lon=lon,
                timestamp=now - timedelta(minutes=minutes_ago),
            )
            .model_dump_json()
            .encode()
        )

    poison = [
        b"\x00\x01 definitely not json",
        b'{"vehicle_id": "K7-09", "lat": 123, "lon": 110.4}',
        fix("K7-08", 1, lat=52.37, lon=4.89),  # Amsterdam, outside Semarang
        fix("K7-07", -60),  # an hour in the future
    ]
    good = [fix("K7-01", 2), fix("K7-01", 1.9), fix("K7-02", 1)]
    async with running_worker(settings, broker.bootstrap, wh):
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for value in [good[0], *poison[:2], good[1], *poison[2:], good[2]]:
                await producer.send_and_wait(VEHICLE_POSITIONS.name, value)
        finally:
            await producer.stop()

        async def stored() -> int:
            return int(await wh.scalar("SELECT count() FROM transit_positions FINAL"))

        async def all_good_stored() -> bool:
            return await stored() == 3

        await eventually(all_good_stored, 60, "the good positions")
        letters = await read_topic(broker.bootstrap, DEAD_LETTER.name, 4)
        by_reason = {dict(r.headers)["reason"].decode(): r for r in letters}
        assert set(by_reason) == {
            "invalid_json",
            "schema_violation",
            "outside_service_area",
            "future_timestamp",
        }
        assert by_reason["invalid_json"].value == poison[0]
        assert b"lat" in dict(by_reason["schema_violation"].headers)["detail"]
        assert (
            dict(by_reason["outside_service_area"].headers)["source.topic"]
            == VEHICLE_POSITIONS.name.encode()
        )
        async with api_client(settings, wh, broker.bootstrap) as api:
            metrics = (await api.get("/metrics")).text
            assert (
                'sitroom_events_dead_lettered_total{reason="future_timestamp",topic="transit.vehicle-positions"}'
                in metrics
            )

            # The same letters are queryable in ClickHouse through the API.
            async def stored_letters() -> list:  # type: ignore[type-arg]
                rows = (await api.get("/v1/deadletters")).json()
                return rows if len(rows) == 4 else []

            rows = await eventually(stored_letters, 30, "the dead letters in ClickHouse")
            by = {r["reason"]: r for r in rows}
            assert set(by) == set(by_reason)
            assert by["invalid_json"]["raw"] == poison[0].decode("utf-8", "replace")
            assert by["outside_service_area"]["source_topic"] == VEHICLE_POSITIONS.name
            assert by["schema_violation"]["source_offset"] is not None
            counts = (await api.get("/v1/deadletters/counts")).json()
            assert sum(c["letters"] for c in counts) == 4
            assert {c["source"] for c in counts} == {VEHICLE_POSITIONS.name}
            overview = (await api.get("/v1/situation")).json()
            assert overview["counts"]["dead_letters"]["last_hour_by_source"] == {
                VEHICLE_POSITIONS.name: 4
            }
            vehicle = (await api.get("/v1/transit/vehicles/K7-01")).json()
            assert vehicle["latest"]["ts"].startswith(
                (now - timedelta(minutes=1.9)).strftime("%Y-%m-%dT%H:%M")
            )


async def test_gtfs_realtime_captures_replay_into_clickhouse_and_the_api(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    settings = settings.model_copy(
        update={"service_area": None}
    )  # the captures are not from Semarang
    files = [GTFS / "mdv_bullrunner-vehicle-positions.pb", GTFS / "mt_speedrt_vehiclePositions.pb"]
    async with running_worker(settings, broker.bootstrap, wh):
        assert await run_connector(GtfsRtSource(files=files), broker.bootstrap) == 21

        async def all_windows_closed() -> bool:
            return int(await wh.scalar("SELECT count() FROM transit_vehicle_1m FINAL")) == 21

        await eventually(all_windows_closed, 60, "windows closed after the replay went idle")
        async with api_client(settings, wh, broker.bootstrap) as api:
            listing = (await api.get("/v1/transit/vehicles", params={"limit": 100})).json()
            assert len(listing) == 21
            bus = (await api.get("/v1/transit/vehicles/1536")).json()
            assert bus["latest"]["route_id"] == "F" and bus["latest"]["occupancy"] == "EMPTY"
            assert abs(bus["latest"]["lat"] - 28.0662) < 1e-3
            assert bus["latest"]["ts"] == "2017-09-13T14:52:55Z"
            assert len(bus["windows"]) == 1 and bus["windows"][0]["positions"] == 1
            assert (await api.get("/v1/transit/vehicles/no-such-bus")).status_code == 404
            bad = await api.get(
                "/v1/transit/overspeed", params={"since": "2026-01-02", "until": "2026-01-01"}
            )
            assert bad.status_code == 422 and "since" in bad.text
            assert (await api.get("/v1/transit/overspeed", params={"limit": 0})).status_code == 422


async def test_acknowledge_and_clear_through_the_api(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    now = datetime.now(UTC)
    # ~90 km/h on K7 (limit 50) for a minute: one overspeed episode.
    fixes = [
        VehiclePosition(
            vehicle_id="K7-05", corridor="K7", lat=-6.99 + i * 125 / 111_320, lon=110.42,
            timestamp=now - timedelta(minutes=10) + timedelta(seconds=5 * i),
        ).model_dump_json().encode()
        for i in range(13)
    ]  # fmt: skip
    async with running_worker(settings, broker.bootstrap, wh):
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for value in fixes:
                await producer.send_and_wait(VEHICLE_POSITIONS.name, value, key=b"K7-05")
        finally:
            await producer.stop()
        async with api_client(settings, wh, broker.bootstrap) as api:

            async def raised() -> list:  # type: ignore[type-arg]
                return (await api.get("/v1/alarms", params={"kind": "overspeed"})).json()["items"]

            alarm = (await eventually(raised, 60, "the overspeed alarm"))[0]
            aid = alarm["id"]
            assert alarm["level"] == "far over limit" and alarm["context"]["limit_kmh"] == 50
            r = await api.post(
                f"/v1/alarms/{aid}/acknowledge",
                json={"by": "operator-1", "note": "calling the driver"},
            )
            assert r.status_code == 202, r.text

            async def acknowledged() -> bool:
                a = (await api.get(f"/v1/alarms/{aid}")).json()
                return a["state"] == "acknowledged" and a["acknowledged_by"] == "operator-1"

            await eventually(acknowledged, 30, "the acknowledgement to be applied")
            again = await api.post(f"/v1/alarms/{aid}/acknowledge", json={"by": "operator-2"})
            assert again.status_code == 409
            assert (await api.post(f"/v1/alarms/{aid}/clear", json={})).status_code == 422
            assert (
                await api.post("/v1/alarms/overspeed/nobody/1/clear", json={"by": "x"})
            ).status_code == 404
            assert (
                await api.post(f"/v1/alarms/{aid}/clear", json={"by": "operator-1"})
            ).status_code == 202

            async def cleared() -> dict:  # type: ignore[type-arg]
                a = (await api.get(f"/v1/alarms/{aid}")).json()
                return a if a["state"] == "cleared" else {}

            done = await eventually(cleared, 30, "the manual clear")
            assert done["cleared_by"] == "operator-1" and done["reason"] == "manual_clear"
            assert [t["state"] for t in done["transitions"]] == [
                "raised",
                "acknowledged",
                "cleared",
            ]
            assert (await api.post(f"/v1/alarms/{aid}/clear", json={"by": "x"})).status_code == 409
