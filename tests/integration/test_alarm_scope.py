"""Alarm tokens act only on their department's domains; the duty officer on all; and the
worker, not only the API, refuses a command that is not the sender's to give."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from connectors.brt_simulator import BrtSimulator
from schemas.alarms import AlarmCommand, CommandAction
from schemas.catalog import ALARM_COMMANDS
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import api_client, eventually, running_worker, write_tokens
from tests.integration.test_reports_flow import _dead_letters

pytestmark = pytest.mark.integration

TOKENS = {"dlh": ("sari.dlh", ["alarms"], "Dinas Lingkungan Hidup"),
          "dishub": ("andi.dishub", ["alarms"], "Dinas Perhubungan"),
          "duty": ("duty.officer", ["supervisor"], "Diskominfo")}  # fmt: skip


def tokens(tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "tokens.toml", TOKENS)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_alarm_commands_are_scoped_by_department(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"api_tokens_file": tokens(tmp_path)})
    start = (int(time.time()) // 3600 - 2) * 3600
    sim = BrtSimulator(seed=7, buses_per_corridor=2, interval_s=5.0, start=start,
                       duration_s=600.0, realtime=False)  # fmt: skip
    async with running_worker(settings, broker.bootstrap, clean_warehouse):
        sent = await run_connector(sim, broker.bootstrap)

        async def released() -> bool:
            stored = await clean_warehouse.scalar("SELECT count() FROM transit_positions FINAL")
            return int(stored) >= sent

        # An alarm read while positions are still held for lateness (or mid-stream) may
        # close a moment later as the bus slows, and acknowledging a closed episode is
        # rightly a no-op: pick one that is open once every position is stored.
        await eventually(released, 60, "every position released and stored")
        async with api_client(settings, clean_warehouse, broker.bootstrap) as api:

            async def open_alarm() -> str | None:
                page = (await api.get("/v1/alarms", params={"kind": "overspeed"})).json()
                ids = [a["id"] for a in page["items"] if a["state"] != "cleared"]
                return ids[0] if ids else None

            first = await eventually(open_alarm, 60, "an open overspeed alarm")
            r = await api.post(f"/v1/alarms/{first}/clear", json={"by": "x"}, headers=bearer("dlh"))
            assert r.status_code == 403 and "Dinas Perhubungan" in r.json()["detail"]
            r = await api.post(f"/v1/alarms/{first}/acknowledge", json={"by": "x"},
                               headers=bearer("dishub"))  # fmt: skip
            assert r.status_code == 202 and r.json()["department"] == "Dinas Perhubungan"

            async def acknowledged() -> bool:
                a = (await api.get(f"/v1/alarms/{first}")).json()
                return bool(a["acknowledged_by"] == "andi.dishub")

            await eventually(acknowledged, 30, "the acknowledgement applied by the worker")
            # A command that went around the API (or raced a re-scoping) reaches the worker,
            # which refuses it: dead-lettered as forbidden, the alarm unchanged.
            sneaky = AlarmCommand(alarm_id=first, action=CommandAction.CLEAR, by="sari.dlh",
                                  at=datetime.now(UTC), department="Dinas Lingkungan Hidup")  # fmt: skip
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(ALARM_COMMANDS.name, sneaky.model_dump_json().encode(),
                                             key=first.encode())  # fmt: skip
            finally:
                await producer.stop()
            letters = await _dead_letters(broker.bootstrap, 1)
            assert [x["reason"] for x in letters] == ["forbidden"]
            assert "may not clear a transit alarm" in letters[0]["detail"]
            assert (await api.get(f"/v1/alarms/{first}")).json()["state"] != "cleared"
            # The duty officer acts for the whole room, whatever their own department.
            r = await api.post(
                f"/v1/alarms/{first}/clear", json={"by": "x"}, headers=bearer("duty")
            )
            assert r.status_code == 202 and r.json()["department"] is None

            async def cleared() -> bool:
                a = (await api.get(f"/v1/alarms/{first}")).json()
                return bool(a["state"] == "cleared" and a["cleared_by"] == "duty.officer")

            await eventually(cleared, 30, "the duty officer's clear applied")
