"""Simulator → Kafka (tansu) → faust worker → ClickHouse (chdb) → API, and restarts."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.brt_simulator import BrtSimulator
from schemas.catalog import VEHICLE_POSITIONS
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from streams.batch_consumer import batch_group
from streams.transit_logic import Outputs, TransitProcessor, TransitRules
from tests.integration.conftest import ListSource, api_client, eventually, running_worker

pytestmark = pytest.mark.integration

START = (int(time.time()) // 3600 - 3) * 3600  # three hours ago, on the hour
DURATION_S = 900.0


def simulator() -> BrtSimulator:
    return BrtSimulator(
        seed=7,
        buses_per_corridor=2,
        interval_s=5.0,
        start=START,
        duration_s=DURATION_S,
        realtime=False,
    )


def reference(settings: Settings) -> tuple[Outputs, BrtSimulator]:
    """The same scenario through the pure logic in one partition, all windows closed."""
    sim = simulator()
    proc = TransitProcessor(TransitRules.from_settings(settings), 0)
    out = Outputs()
    now = datetime.now(UTC).timestamp()
    t = float(START)
    while t - START < DURATION_S:
        for p in sim.tick(t, 5.0):
            assert settings.service_area is not None
            if settings.service_area.contains(p.lon, p.lat):
                proc.apply(p, out, now)
        t += 5.0
    proc.flush(now, out)
    return out, sim


async def vehicle_windows(wh: Warehouse) -> list[tuple[object, ...]]:
    rows = await wh.query(
        "SELECT vehicle_id, window_start, corridor, positions, speed_samples, mean_speed_kmh,"
        " max_speed_kmh, seconds_over_limit FROM transit_vehicle_1m FINAL ORDER BY vehicle_id, window_start"
    )
    return [tuple(r.values()) for r in rows]


def expected_windows(out: Outputs) -> list[tuple[object, ...]]:
    rows = sorted(out.vehicle_windows, key=lambda r: (r[0], r[1]))
    # Rows carry times as seconds since the epoch; ClickHouse gives them back as UTC times.
    return [(r[0], datetime.fromtimestamp(r[1], UTC), *r[2:8]) for r in rows]


def close(a: list[tuple[object, ...]], b: list[tuple[object, ...]]) -> bool:
    """Equal, with float columns compared to Float32 precision."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, float) or isinstance(y, float):
                if (
                    x is None
                    or y is None
                    or abs(float(x) - float(y)) > 1e-3 * max(1.0, abs(float(y)))
                ):  # type: ignore[arg-type]
                    return False
            elif x != y:
                return False
    return True


async def test_simulated_fleet_end_to_end(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    ref, truth_sim = reference(settings)
    expected = expected_windows(ref)
    async with running_worker(settings, broker.bootstrap, wh):
        published = await run_connector(simulator(), broker.bootstrap)
        assert published == len(truth_sim.buses) * int(DURATION_S / 5)

        async def windows_done() -> bool:
            return close(await vehicle_windows(wh), expected)

        await eventually(windows_done, 90, "vehicle windows equal to the reference run")

        async with api_client(settings, wh, broker.bootstrap) as api:
            page = (await api.get("/v1/transit/overspeed", params={"limit": 1000})).json()
            got = sorted(
                (e["vehicle_id"], datetime.fromisoformat(e["started_at"]).timestamp())
                for e in page["items"]
            )
            truth = sorted(
                (s.vehicle_id, s.start)
                for s in truth_sim.truth
                if s.start <= START + DURATION_S - 25
            )
            assert page["total"] == len(got) == len(truth) > 0
            for (v, started), (tv, ts) in zip(got, truth, strict=True):
                assert v == tv and abs(started - ts) <= 5.0
            speeder = truth[0][0]
            mine = (await api.get("/v1/transit/overspeed", params={"vehicle": speeder})).json()
            assert mine["items"] and all(e["vehicle_id"] == speeder for e in mine["items"])
            paged = (
                await api.get("/v1/transit/overspeed", params={"limit": 2, "offset": 1})
            ).json()
            assert [e["alarm_id"] for e in paged["items"]] == [
                e["alarm_id"] for e in page["items"][1:3]
            ]

            detail = (await api.get(f"/v1/transit/vehicles/{speeder}")).json()
            assert detail["latest"]["vehicle_id"] == speeder and len(detail["windows"]) == 15
            tagged = await wh.scalar(
                "SELECT countIf(kecamatan != '') / count() FROM transit_positions"
            )
            assert (
                tagged > 0.8
            )  # every position in the city carries its kecamatan (K2 runs to Ungaran)
            corridor = (await api.get(f"/v1/transit/corridors/{speeder[:2]}/windows")).json()
            assert corridor and corridor[0]["vehicles"] == 2
            assert (await api.get("/readyz")).json() == {
                "status": "ready",
                "clickhouse": True,
                "broker": True,
            }
            metrics = (await api.get("/metrics")).text
            assert 'sitroom_events_consumed_total{topic="transit.vehicle-positions"}' in metrics
            assert (
                "sitroom_sink_flush_seconds_bucket" in metrics and "sitroom_consumer_lag" in metrics
            )

    bad = await wh.scalar("SELECT count() FROM transit_positions FINAL WHERE bad_fix = 1")
    assert bad == ref.bad_fixes > 0
    raised = await wh.scalar("SELECT count() FROM alarm_transitions FINAL WHERE state = 'raised'")
    assert raised == len([a for a in ref.alarms if a.state == "raised"])


async def test_restart_and_full_replay_neither_lose_nor_duplicate(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    ref, _ = reference(settings)
    expected = expected_windows(ref)
    ticks = [batch async for batch in simulator().batches(None)]  # type: ignore[arg-type]
    half = len(ticks) // 2

    async with running_worker(settings, broker.bootstrap, wh):
        await run_connector(ListSource(ticks[:half]), broker.bootstrap)

        async def first_half_stored() -> bool:
            n = await wh.scalar("SELECT count() FROM transit_positions FINAL")
            return bool(n >= sum(len(b) for b in ticks[:half]) * 0.98)

        await eventually(first_half_stored, 60, "first half stored")
    # A second worker of the same group continues from the committed offsets and checkpoint.
    await run_connector(ListSource(ticks[half:]), broker.bootstrap)
    async with running_worker(settings, broker.bootstrap, wh):

        async def windows_done() -> bool:
            return close(await vehicle_windows(wh), expected)

        await eventually(windows_done, 90, "windows after restart equal to the reference")
    counts = {
        t: await wh.scalar(f"SELECT count() FROM {t} FINAL")
        for t in (
            "transit_positions",
            "transit_vehicle_1m",
            "transit_corridor_1m",
            "alarms",
            "alarm_transitions",
        )
    }

    # A new consumer group replays the whole topic: rows are replaced, not added.
    replay = settings.model_copy(update={"app_id": settings.app_id + "-replay"})
    async with running_worker(replay, broker.bootstrap, wh):

        async def replayed() -> bool:
            n = await wh.scalar(
                "SELECT sum(offset) FROM stream_checkpoints FINAL WHERE group_id = {g:String}",
                {"g": replay.app_id},
            )
            total = await wh.scalar(
                "SELECT sum(offset) FROM stream_checkpoints FINAL WHERE group_id = {g:String}",
                {"g": settings.app_id},
            )
            return bool(n and n == total)

        await eventually(replayed, 90, "the replay to reach the end of the topic")
        await eventually(lambda: _windows_equal(wh, expected), 30, "replay windows")
    after = {t: await wh.scalar(f"SELECT count() FROM {t} FINAL") for t in counts}
    assert after == counts


async def _windows_equal(wh: Warehouse, expected: list[tuple[object, ...]]) -> bool:
    return close(await vehicle_windows(wh), expected)


async def test_a_failing_write_stops_the_worker_and_a_restart_loses_nothing(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    ticks = [batch async for batch in simulator().batches(None)]  # type: ignore[arg-type]
    async with running_worker(settings, broker.bootstrap, wh) as worker:
        # ClickHouse now refuses the positions insert (no such table) for good.
        await wh._run("command", "RENAME TABLE transit_positions TO transit_positions_away")
        try:
            await run_connector(ListSource(ticks[:10]), broker.bootstrap)

            async def crashed() -> bool:
                return worker.crashed() is not None

            await eventually(crashed, 60, "the worker to stop on a rejected write")
        finally:
            await wh._run("command", "RENAME TABLE transit_positions_away TO transit_positions")
    assert await wh.scalar("SELECT count() FROM transit_positions") == 0
    # Nothing was stored, so nothing may have been committed either.
    probe = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=batch_group(settings.app_id),
                             enable_auto_commit=False)  # fmt: skip
    await probe.start()
    try:
        committed = [
            await probe.committed(TopicPartition(VEHICLE_POSITIONS.name, p))
            for p in range(VEHICLE_POSITIONS.partitions)
        ]
    finally:
        await probe.stop()
    assert all(c is None or c <= 0 for c in committed), committed
    async with running_worker(settings, broker.bootstrap, wh):
        expected, seen = sum(len(b) for b in ticks[:10]), [None]

        async def all_stored() -> bool:
            seen[0] = await wh.scalar("SELECT count() FROM transit_positions FINAL")
            return bool(seen[0] == expected)

        try:
            await eventually(all_stored, 90, "the restarted worker to store every position")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {seen[0]} of {expected} stored") from exc
