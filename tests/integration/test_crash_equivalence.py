"""The same positions to a clean worker and to a worker killed with SIGKILL mid-stream.

Both are real `sitroom worker` processes on one tansu broker, each with its own consumer
group and its own chdb directory (chdb allows one directory per process). The feed is
adversarial but inside the exact range: vehicles interleaved, each vehicle's fixes shuffled
up to SHUFFLE_S behind its newest (below the allowed lateness, leaving room for the wall
time a busy worker spends between two messages), and some fixes sent twice. The killed
worker restarts each time from its committed offsets and its ClickHouse checkpoint, and
takes smaller batches than the clean one. Every table must come out identical.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from connectors.publisher import MAX_EVENTS_PER_MESSAGE, partition_for
from schemas.catalog import VEHICLE_POSITIONS
from schemas.transit import VehiclePosition
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.kafka_admin import create_topics
from streams.batch_consumer import batch_group
from tests.integration.conftest import (
    ALARM_STATE,
    TRANSIT_QUERIES,
    WorkerProcess,
    adversarial_feed,
    committed_offsets,
    dump_tables,
    end_offsets,
    publish_positions,
    table_differences,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

START = (int(time.time()) // 3600 - 3) * 3600  # three hours ago, on the hour
DURATION_S = 300  # five 1-minute windows per vehicle
INTERVAL_S = 2.0  # one fix every 2 s: a shuffle of 5 s puts many of them out of order
BUSES_PER_CORRIDOR = 14  # x 7 corridors = 98 buses, 14,700 positions
LATENESS_S = 8.0
SHUFFLE_S = 5.0
TICK_S = 1.0
KILLS = (0.15, 0.4, 0.65)  # share of the topic committed before each kill
# The feed arrives over FEED_S, as a live one does: a worker reading a preloaded backlog
# would finish it between two kills, and a killed worker's restart takes ~15 s (its old
# member's session must expire before the group lets the new one in).
FEED_S = 60.0
# The newest fix of a vehicle is INTERVAL_S before its last window's end, so that window
# closes once the vehicle was quiet INTERVAL_S + the lateness; then a few ticks of slack.
CLOSE_WAIT_S = INTERVAL_S + LATENESS_S + 4 * TICK_S + 3.0


def messages_of(batches: Sequence[Sequence[VehiclePosition]]) -> int:
    """How many Kafka messages the publisher makes of the batches (per batch, a message
    per partition and MAX_EVENTS_PER_MESSAGE events)."""
    n = 0
    for batch in batches:
        per_partition = Counter(
            partition_for(p.vehicle_id, VEHICLE_POSITIONS.partitions) for p in batch
        )
        n += sum(-(-c // MAX_EVENTS_PER_MESSAGE) for c in per_partition.values())
    return n


async def consumed(bootstrap: str, worker: WorkerProcess) -> int:
    group = batch_group(worker.env["SITROOM_APP_ID"])
    return sum(max(0, c) for c in await committed_offsets(bootstrap, group, VEHICLE_POSITIONS))


async def wait_caught_up(
    bootstrap: str, worker: WorkerProcess, total: int, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.alive(), f"{worker.name} exited:\n{worker.log_tail()}"
        if await consumed(bootstrap, worker) >= total:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(
        f"{worker.name} committed {await consumed(bootstrap, worker)} of {total} messages "
        f"in {timeout_s}s:\n{worker.log_tail()}"
    )


async def clean_run(bootstrap: str, worker: WorkerProcess, total: int) -> dict[str, float]:
    worker.start()
    await wait_caught_up(bootstrap, worker, total, 90)
    await asyncio.sleep(CLOSE_WAIT_S)
    metrics = await worker.metrics()
    worker.stop()
    return metrics


async def killed_run(bootstrap: str, worker: WorkerProcess, total: int) -> list[int]:
    """Kill the worker whenever its group has committed the next share of the topic."""
    rng = random.Random(9)
    killed_at = []
    worker.start()
    for share in KILLS:
        # Each incarnation must have committed something of its own before it dies.
        target = max(share * total, (killed_at[-1] if killed_at else 0) + 10)
        deadline = time.monotonic() + 90
        while await consumed(bootstrap, worker) < target:
            assert worker.alive(), f"{worker.name} exited:\n{worker.log_tail()}"
            assert time.monotonic() < deadline, f"no progress:\n{worker.log_tail()}"
            await asyncio.sleep(0.05)
        # Somewhere inside a batch, a sink write or a checkpoint, not on a commit boundary.
        await asyncio.sleep(rng.uniform(0.0, 0.4))
        killed_at.append(await consumed(bootstrap, worker))
        assert killed_at[-1] < total, f"the stream ended before kill {len(killed_at)}"
        worker.kill()
        worker.start()
    await wait_caught_up(bootstrap, worker, total, 120)
    await asyncio.sleep(CLOSE_WAIT_S)
    worker.stop()
    return killed_at


async def test_a_worker_killed_mid_stream_writes_exactly_what_a_clean_worker_writes(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap
    await create_topics(bootstrap)
    batches, expected_positions, expected_windows = adversarial_feed(
        BUSES_PER_CORRIDOR,
        START,
        DURATION_S,
        SHUFFLE_S,
        duplicates=150,
        chunk=100,
        interval_s=INTERVAL_S,
    )
    total = messages_of(batches)
    feeding = asyncio.create_task(
        publish_positions(bootstrap, batches, pause_s=FEED_S / len(batches))
    )
    common = dict(
        window_allowed_lateness_s=LATENESS_S,
        stream_tick_s=TICK_S,
        sink_max_delay_s=0.3,
        # Small batches, so that the kills land mid-stream (a worker reading the whole
        # backlog in a batch or two would finish before the first kill).
        batch_max_messages=4,
        batch_gather_s=0.0,
        # Rows of several batches are stored before their checkpoint: a kill between
        # checkpoints replays them, and the replay must write the same rows.
        checkpoint_interval_s=0.3,
        metrics_host="127.0.0.1",
    )
    clean = WorkerProcess(
        "clean",
        worker_env(bootstrap, tmp_path / "clean", "crash-clean", **common),
        tmp_path / "clean.log",
    )
    killed = WorkerProcess(
        "killed",
        # Small batches: the stream lasts long enough to be killed inside it four times,
        # and the batching differs from the clean run's.
        worker_env(bootstrap, tmp_path / "killed", "crash-killed", sink_batch_messages=4, **common),
        tmp_path / "killed.log",
    )
    try:
        clean_metrics, killed_at = await asyncio.gather(
            clean_run(bootstrap, clean, total), killed_run(bootstrap, killed, total)
        )
        await feeding
    finally:
        feeding.cancel()
        clean.stop()
        killed.stop()
    assert sum(await end_offsets(bootstrap, VEHICLE_POSITIONS)) == total
    assert killed.starts == len(KILLS) + 1 and len(set(killed_at)) == len(KILLS), killed_at

    # The clean run is the reference only if the feed stayed inside the exact range.
    for metric in ("sitroom_window_corrections_total", "sitroom_late_events_total"):
        seen = clean_metrics.get(f'{metric}{{topic="transit.vehicle-positions"}}', 0.0)
        assert seen == 0, f"the clean run counted {seen} {metric}: the feed is not exact"

    reference = dump_tables(clean.dsn, TRANSIT_QUERIES)
    assert len(reference["transit_positions"]) == expected_positions
    assert len(reference["transit_vehicle_1m"]) == expected_windows, "windows left open"
    assert any(r[ALARM_STATE] == "raised" for r in reference["alarm_transitions"])
    crashed = dump_tables(killed.dsn, TRANSIT_QUERIES)
    diff = table_differences(reference, crashed, "killed")
    assert not diff, f"{diff}\nkilled after {killed_at} of {total} messages (see {killed.log_path})"
