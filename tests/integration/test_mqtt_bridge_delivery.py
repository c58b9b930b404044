"""The MQTT bridge loses nothing: readings sent while it is away wait in its persistent
session on Mosquitto, and a reading it received but never got into Kafka (a crash in
between) is redelivered, because it is acknowledged only after Kafka has it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import aiomqtt
import pytest

from connectors.mqtt_bridge import MqttBridge, flood_route
from connectors.publisher import KafkaPublisher
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import eventually, running_worker

pytestmark = pytest.mark.integration

MQTT_URL = "mqtt://127.0.0.1:1883"  # Mosquitto runs on every machine of this project


def reading(minute: int, value: float) -> str:
    ts = time.strftime(
        "%Y-%m-%dT%H:%M:00Z", time.gmtime((int(time.time()) // 60 - 30 + minute) * 60)
    )
    return f'{{"value": {value}, "timestamp": "{ts}"}}'


async def test_readings_survive_an_absent_and_a_crashing_bridge(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    route = flood_route(f"test-{uuid.uuid4().hex[:8]}")
    topic = route.pattern.replace("{station_id}", "BKB-MUARA").replace("{kind}", "level")

    # The bridge's first connection creates its session on Mosquitto; then it goes away.
    first = MqttBridge(MQTT_URL, route)
    task = asyncio.create_task(run_connector(first, broker.bootstrap))
    await asyncio.wait_for(first.subscribed.wait(), 15)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    async with aiomqtt.Client("127.0.0.1", 1883) as gauge:
        for minute in range(3):
            await gauge.publish(topic, reading(minute, 120 + minute), qos=1)

    # A bridge that receives the queued readings and dies before Kafka has any of them.
    crashing = MqttBridge(MQTT_URL, route)
    publisher = KafkaPublisher(broker.bootstrap, "crashing-bridge")
    await publisher.start()
    batches = crashing.batches(publisher)
    try:
        received = await asyncio.wait_for(anext(batches), 15)
        assert received and {e.station_id for e in received} == {"BKB-MUARA"}  # type: ignore[attr-defined]
    finally:
        await batches.aclose()  # gone before the publish: nothing acknowledged
        await publisher.stop()

    async with running_worker(settings, broker.bootstrap, clean_warehouse):
        healthy = MqttBridge(MQTT_URL, route)
        task = asyncio.create_task(run_connector(healthy, broker.bootstrap))
        try:

            async def all_three() -> bool:
                n = await clean_warehouse.scalar(
                    "SELECT count() FROM flood_gauge_readings FINAL WHERE station_id = 'BKB-MUARA'"
                )
                return bool(n == 3)

            await eventually(all_three, 60, "the three readings sent while the bridge was away")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_burst_larger_than_the_brokers_queue_arrives_whole(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    # Mosquitto holds at most 1000 unacknowledged messages per client (max_queued_messages)
    # and drops the rest: the bridge must keep up with a burst bigger than that.
    route = flood_route(f"test-{uuid.uuid4().hex[:8]}")
    topic = route.pattern.replace("{station_id}", "BKB-MUARA").replace("{kind}", "level")
    start = (int(time.time()) // 60 - 3000) * 60
    async with running_worker(settings, broker.bootstrap, clean_warehouse):
        bridge = MqttBridge(MQTT_URL, route)
        task = asyncio.create_task(run_connector(bridge, broker.bootstrap))
        try:
            await asyncio.wait_for(bridge.subscribed.wait(), 15)
            async with aiomqtt.Client("127.0.0.1", 1883) as gauge:
                for k in range(2500):
                    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + k * 60))
                    await gauge.publish(topic, f'{{"value": 150, "timestamp": "{ts}"}}', qos=1)

            async def all_stored() -> bool:
                n = await clean_warehouse.scalar(
                    "SELECT count() FROM flood_gauge_readings FINAL WHERE station_id = 'BKB-MUARA'"
                )
                return bool(n == 2500)

            await eventually(all_stored, 90, "all 2500 readings of the burst")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
