"""A connector that goes quiet → heartbeats on Kafka (tansu) → worker → alarm and connector
status in ClickHouse (chdb) → /v1/situation and /v1/alarms."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel

from connectors.brt_simulator import BrtSimulator
from connectors.publisher import KafkaPublisher
from schemas.alarm_rules import DEFAULT_RULES
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import ListSource, api_client, eventually, running_worker

pytestmark = pytest.mark.integration


class GoesQuiet(ListSource):
    """Publishes its batches, then stays connected and says nothing (an upstream gone quiet)."""

    name = "quiet-feed"

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        async for batch in super().batches(publisher):
            yield batch
        await asyncio.Event().wait()


async def test_a_quiet_source_raises_source_silent_and_clears_when_it_finishes(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        DEFAULT_RULES.read_text().replace(
            "default_silent_after_s = 120.0", "default_silent_after_s = 3.0"
        )
    )
    settings = settings.model_copy(update={"alarm_rules": rules, "source_heartbeat_s": 0.5})
    sim = BrtSimulator(
        seed=3, buses_per_corridor=1, start=time.time() - 60, duration_s=10, realtime=False
    )
    quiet = GoesQuiet([sim.events_at(sim.start)])
    async with running_worker(settings, broker.bootstrap, clean_warehouse):
        feed = asyncio.create_task(run_connector(quiet, broker.bootstrap, heartbeat_s=0.5))
        replay = await run_connector(
            ListSource([sim.events_at(sim.start + 5)]), broker.bootstrap, heartbeat_s=0.5
        )
        assert replay > 0
        async with api_client(settings, clean_warehouse, broker.bootstrap) as api:

            async def silent_alarm() -> list:  # type: ignore[type-arg]
                items = (await api.get("/v1/alarms", params={"kind": "source_silent"})).json()[
                    "items"
                ]
                return [a for a in items if a["state"] != "cleared"]

            (alarm,) = await eventually(silent_alarm, 60, "a source_silent alarm")
            assert alarm["entity"] == "quiet-feed" and alarm["domain"] == "sources"
            assert alarm["context"]["connector_alive"] is True  # quiet, not dead
            situation = (await api.get("/v1/situation")).json()
            status = {c["connector"]: c for c in situation["connectors"]}
            assert status["quiet-feed"]["state"] == "running"
            assert status["quiet-feed"]["silent_s"] >= 3.0
            assert status["quiet-feed"]["events_total"] == len(quiet._batches[0])
            assert status["test-list"]["state"] == "finished"  # a replay that ended raises nothing
            assert situation["active_alarms"]["sources"] == {"warning": 1}

            feed.cancel()
            with pytest.raises(asyncio.CancelledError):
                await feed

            async def stopped() -> bool:
                rows = (await api.get("/v1/situation")).json()["connectors"]
                return any(c["connector"] == "quiet-feed" and c["state"] == "stopped" for c in rows)

            await eventually(stopped, 30, "the connector's last heartbeat saying it stopped")
            assert await silent_alarm()  # a stopped source is still a silent one
