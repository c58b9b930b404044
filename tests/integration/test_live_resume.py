"""Live (SSE) resume against a real broker and a real HTTP server: a client that loses its
connection and comes back with Last-Event-ID misses nothing and sees nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import uvicorn
from aiokafka import AIOKafkaProducer

from api.app import create_api
from api.commands import KafkaEventPublisher
from schemas.catalog import VEHICLE_POSITIONS
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.kafka_admin import create_topics
from tests.integration.conftest import free_port

PARTITIONS = VEHICLE_POSITIONS.partitions
ITEMS_PER_RECORD = 3  # connectors publish a batch of positions per message


@contextlib.asynccontextmanager
async def serving(settings: Settings, warehouse: Warehouse, bootstrap: str) -> AsyncIterator[str]:
    async def probe() -> bool:
        return True

    commands = KafkaEventPublisher(bootstrap)
    app = create_api(settings, warehouse, probe, commands)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the API did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        await commands.close()


async def events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """The SSE events of a response, comments (pings) left out."""
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


async def publish(bootstrap: str, first: int, records: int) -> set[tuple[int, int]]:
    """``records`` messages of ``ITEMS_PER_RECORD`` positions each, spread over every
    partition; returns the (record, item) pairs sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for n in range(first, first + records):
            batch = [
                {"vehicle_id": f"v{n}", "record": n, "item": i} for i in range(ITEMS_PER_RECORD)
            ]
            await producer.send_and_wait(
                VEHICLE_POSITIONS.name, orjson.dumps(batch), key=f"v{n}".encode(),
                partition=n % PARTITIONS,
            )  # fmt: skip
    finally:
        await producer.stop()
    return {(n, i) for n in range(first, first + records) for i in range(ITEMS_PER_RECORD)}


def item_of(event: dict[str, str]) -> tuple[int, int]:
    body: dict[str, Any] = orjson.loads(event["data"])
    return body["record"], body["item"]


async def read(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], until: int, after_ready=None
) -> tuple[dict[str, str], list[dict[str, str]], list[dict[str, str]]]:  # type: ignore[no-untyped-def]
    """Open the stream; once it is ready run ``after_ready``; read ``until`` item events (or
    until 3 s pass with none, for counting extras). Returns the opening event, the items and
    any resync events."""
    items: list[dict[str, str]] = []
    resyncs: list[dict[str, str]] = []
    ready: dict[str, str] = {}
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        stream = events(response).__aiter__()
        while len(items) < until:
            try:
                event = await asyncio.wait_for(stream.__anext__(), 3 if ready else 15)
            except TimeoutError:
                break
            if event["event"] == "sitroom.ready":
                ready = event
                if after_ready:
                    await after_ready()
            elif event["event"] == "sitroom.resync":
                resyncs.append(event)
            else:
                items.append(event)
    return ready, items, resyncs


async def test_a_reconnecting_client_misses_nothing_and_sees_nothing_twice(
    broker: EmbeddedBroker, settings: Settings, warehouse: Warehouse
) -> None:
    await create_topics(broker.bootstrap)
    async with serving(settings, warehouse, broker.bootstrap) as base, httpx.AsyncClient(
        timeout=httpx.Timeout(30, read=20)
    ) as client:  # fmt: skip
        url = f"{base}/v1/live/transit"
        sent: set[tuple[int, int]] = set()

        async def first_batch() -> None:
            sent.update(await publish(broker.bootstrap, 0, 20))

        # Cut off mid-way: 25 of 60 items, inside a record (25 is not a multiple of 3).
        ready, before, _ = await read(client, url, {}, 25, first_batch)
        assert orjson.loads(ready["data"]) == {"stream": "transit", "resumed": False}
        assert len(before) == 25
        assert all(e["id"].startswith(f"{VEHICLE_POSITIONS.name}:") for e in before)
        # Published while the client is away.
        sent |= await publish(broker.bootstrap, 20, 20)

        started = time.monotonic()
        ready, after, resyncs = await read(client, url, {"Last-Event-ID": before[-1]["id"]}, 10_000)
        assert orjson.loads(ready["data"])["resumed"] is True
        assert resyncs == []
        seen = [item_of(e) for e in before + after]
        assert len(seen) == len(set(seen)), "an item was delivered twice"
        assert set(seen) == sent, f"missed {sorted(sent - set(seen))[:10]}"
        assert time.monotonic() - started < 30


async def test_an_id_it_cannot_resume_from_says_so_and_starts_from_now(
    broker: EmbeddedBroker, settings: Settings, warehouse: Warehouse
) -> None:
    await create_topics(broker.bootstrap)
    async with serving(settings, warehouse, broker.bootstrap) as base, httpx.AsyncClient(
        timeout=httpx.Timeout(30, read=20)
    ) as client:  # fmt: skip
        await publish(broker.bootstrap, 0, 5)  # before the client: not replayed
        fresh: set[tuple[int, int]] = set()

        async def later() -> None:
            fresh.update(await publish(broker.bootstrap, 5, 2))

        # The query parameter, for clients that reopen the stream themselves.
        url = f"{base}/v1/live/transit?last_event_id=sitroom.alarms:0:3:0"
        ready, items, resyncs = await read(client, url, {}, len(fresh) or 6, later)
        assert orjson.loads(ready["data"])["resumed"] is False
        assert len(resyncs) == 1 and "not an event id" in resyncs[0]["data"]
        assert {item_of(e) for e in items} == fresh
