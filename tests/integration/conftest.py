"""Integration fixtures: a real tansu broker per test, one chdb engine per test process.

chdb allows one data directory per process, so the engine is session-wide and each test
starts from truncated tables.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from api.app import create_api
from api.commands import KafkaEventPublisher
from connectors.base import Source
from connectors.publisher import KafkaPublisher
from schemas.catalog import VEHICLE_POSITIONS
from schemas.clickhouse_ddl import DDL
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.kafka_admin import broker_reachable, create_topics
from sitroom.runtime import WorkerService

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    wh = Warehouse(f"chdb://{tmp_path_factory.mktemp('chdb')}")
    yield wh
    wh.close()


@pytest.fixture
async def clean_warehouse(warehouse: Warehouse) -> Warehouse:
    await warehouse.ensure_schema()
    for statement in DDL:
        if "CREATE TABLE" in statement:
            table = statement.split("EXISTS", 1)[1].split("(", 1)[0].strip()
            await warehouse._run("command", f"TRUNCATE TABLE {table}")
    return warehouse


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(log_path=tmp_path / "broker.log")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_id=f"it-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        window_idle_close_s=2.0,
        sink_max_delay_s=0.3,
    )


class ListSource(Source):
    """Publishes prepared batches, e.g. one half of a deterministic simulator run."""

    name = "test-list"
    topic = VEHICLE_POSITIONS

    def __init__(self, batches: Sequence[Sequence[BaseModel]]) -> None:
        self._batches = batches

    def key(self, event: BaseModel) -> str:
        return str(event.vehicle_id)

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        for batch in self._batches:
            yield batch


@asynccontextmanager
async def running_worker(
    settings: Settings, bootstrap: str, warehouse: Warehouse
) -> AsyncIterator[WorkerService]:
    await create_topics(bootstrap)
    worker = WorkerService(settings, bootstrap, warehouse)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


@asynccontextmanager
async def api_client(
    settings: Settings, warehouse: Warehouse, bootstrap: str
) -> AsyncIterator[httpx.AsyncClient]:
    async def probe() -> bool:
        return await broker_reachable(bootstrap)

    commands = KafkaEventPublisher(bootstrap)
    app = create_api(settings, warehouse, probe, commands)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield c
    await commands.close()


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout_s: float = 60.0, what: str = "condition"
) -> Any:
    """Poll until ``check`` returns a truthy value; fail with the last value seen."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last value {last!r}")
