"""Two workers of one consumer group in one process, sharing one warehouse, while
partitions move back and forth between them mid-stream; then the same topic through a
single worker. The tables must be identical, and no worker may hold (and tick, and
checkpoint) state of a partition it does not own.

Both runs read the same topic of one tansu broker: the moving run while the feed is being
published, at a steady pace (a pause in the feed is real idle time for every vehicle's
clock, which a replay of the backlog would not see); the reference afterwards, as a new
consumer group replaying the whole topic, with the tables truncated in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from schemas.catalog import FLOOD_REPORTS, GAUGE_READINGS, VEHICLE_POSITIONS
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.kafka_admin import create_topics
from sitroom.runtime import WorkerService
from streams.pipeline import Pipeline
from tests.integration.conftest import (
    ALARM_STATE,
    adversarial_feed,
    eventually,
    publish_positions,
    table_differences,
    transit_tables,
    truncate_all,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

START = (int(time.time()) // 3600 - 3) * 3600 + 1800  # two and a half hours ago
DURATION_S = 300
BUSES_PER_CORRIDOR = 6  # 42 buses, one fix every 2 s: 6,300 positions
SHUFFLE_S = 5.0
# As in the crash test. A rebalance stops all consumption for a few seconds (the group's
# join); that must not count as idle time of the restored vehicle clocks.
LATENESS_S = 8.0
CHUNK = 42  # positions per publish
PAUSE_S = 0.2  # between publishes: the feed lasts about 30 s
MOVES = (0.15, 0.35, 0.55, 0.75)  # share of the feed published before each move


def pipelines(worker: WorkerService) -> dict[str, Pipeline]:
    return {p.name: p for p in worker.pipelines}


def assigned(worker: WorkerService) -> set[tuple[str, int]]:
    return worker.assignment()


def ownership_problems(workers: list[WorkerService]) -> list[str]:
    """Each pipeline of each worker owns exactly the state of what is assigned to it, so
    no state is owned twice; '' lines when all is well."""
    problems = []
    for w, worker in enumerate(workers):
        tps = assigned(worker)
        transit = {tp for tp in tps if tp[0] == VEHICLE_POSITIONS.name}
        flood = (
            {("flood", 0)} if tps & {(GAUGE_READINGS.name, 0), (FLOOD_REPORTS.name, 0)} else set()
        )
        own = pipelines(worker)
        if set(own["transit"].owned()) != transit:
            problems.append(
                f"worker {w}: transit owns {own['transit'].owned()}, assigned {transit}"
            )
        if set(own["flood"].owned()) != flood:
            problems.append(f"worker {w}: flood owns {own['flood'].owned()}, assigned {flood}")
        for name, pipeline in own.items():
            # Per-partition state keys are (topic, partition): only of assigned partitions.
            stray = {k for k in pipeline.owned() if "." in k[0] and k not in tps}
            if stray:
                problems.append(f"worker {w}: {name} owns unassigned {sorted(stray)}")
    flood_owners = sum(("flood", 0) in pipelines(w)["flood"].owned() for w in workers)
    if flood_owners != 1:
        problems.append(f"the flood state is owned by {flood_owners} workers")
    for name in pipelines(workers[0]):
        seen: dict[tuple[str, int], int] = {}
        for w, worker in enumerate(workers):
            for key in pipelines(worker)[name].owned():
                if key in seen:
                    problems.append(f"{name} state {key} owned by workers {seen[key]} and {w}")
                seen[key] = w
    return problems


async def settled(workers: list[WorkerService], what: str) -> None:
    """Wait until the transit partitions are split among ``workers`` (each holding some)
    and every pipeline owns exactly what its worker is assigned."""

    async def check() -> bool:
        shares = [{tp for tp in assigned(w) if tp[0] == VEHICLE_POSITIONS.name} for w in workers]
        split = all(shares) and sum(map(len, shares)) == len(set().union(*shares)) == 6
        return split and not ownership_problems(workers)

    try:
        await eventually(check, 60, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {ownership_problems(workers)}") from exc


async def complete(wh: Warehouse, positions: int, windows: int) -> None:
    async def counts() -> bool:
        got = (
            await wh.scalar("SELECT count() FROM transit_positions FINAL"),
            await wh.scalar("SELECT count() FROM transit_vehicle_1m FINAL"),
        )
        return got == (positions, windows)

    await eventually(counts, 90, f"{positions} positions and {windows} closed windows")
    await asyncio.sleep(3.0)  # a few more ticks: nothing may change any more


async def test_partitions_moving_between_two_workers_change_nothing(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh, bootstrap = clean_warehouse, broker.bootstrap
    await create_topics(bootstrap)
    settings = settings.model_copy(update={"window_allowed_lateness_s": LATENESS_S})
    batches, n_positions, n_windows = adversarial_feed(
        BUSES_PER_CORRIDOR, START, DURATION_S, SHUFFLE_S, duplicates=60, chunk=CHUNK, seed=3
    )
    published = [0]
    reached = {share: asyncio.Event() for share in MOVES}

    async def feed() -> None:
        for i in range(len(batches)):
            await publish_positions(bootstrap, batches[i : i + 1])
            published[0] = i + 1
            for share, event in reached.items():
                if published[0] >= share * len(batches):
                    event.set()
            await asyncio.sleep(PAUSE_S)

    async def when_fed(share: float) -> None:
        await reached[share].wait()
        assert published[0] < len(batches), "the feed ended before the partitions moved"

    first = WorkerService(settings, bootstrap, wh)
    second = WorkerService(settings, bootstrap, wh)
    running: list[WorkerService] = []

    async def move(share: float, change: Callable[[], Awaitable[None]], what: str) -> None:
        await when_fed(share)
        # Still exact after a stretch of the feed: no revoked partition's state came back
        # (e.g. by a batch fetched before the revoke and handled after it).
        assert not ownership_problems(running), ownership_problems(running)
        await change()
        await settled(running, what)

    async def start(worker: WorkerService) -> None:
        await worker.start()
        running.append(worker)

    async def stop(worker: WorkerService) -> None:
        # faust leaves the group on stop without revoking, so the stopped worker's pipelines
        # keep their state in memory; its timers and agents are stopped, so it is inert.
        running.remove(worker)
        await worker.stop()

    feeding = asyncio.create_task(feed())
    try:
        await start(first)
        await settled(running, "the first worker to own every partition")
        await move(MOVES[0], lambda: start(second), "the second worker to take a share")
        await move(MOVES[1], lambda: stop(second), "the first worker to take all back")
        second = WorkerService(settings, bootstrap, wh)
        await move(MOVES[2], lambda: start(second), "the second worker to take a share again")
        await move(MOVES[3], lambda: stop(first), "the second worker to take all")
        await feeding
        await complete(wh, n_positions, n_windows)
        assert not ownership_problems(running)
    finally:
        feeding.cancel()
        for worker in running:
            await worker.stop()
    moved = await transit_tables(wh)
    assert any(r[ALARM_STATE] == "raised" for r in moved["alarm_transitions"])

    # The reference: one worker, a new group, the whole topic from the start.
    await truncate_all(wh)
    reference = settings.model_copy(update={"app_id": settings.app_id + "-single"})
    single = WorkerService(reference, bootstrap, wh)
    await single.start()
    try:
        await complete(wh, n_positions, n_windows)
    finally:
        await single.stop()
    diff = table_differences(await transit_tables(wh), moved, "moved")
    assert not diff, diff
