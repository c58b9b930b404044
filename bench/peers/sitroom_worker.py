"""The sitroom worker as a benchmark consumer: the real ``WorkerService`` (every domain's
pipeline, faust app, batch consumer, chdb sink, checkpoints), timed from the first messages
consumed until every position row is queryable.

Modes:
- ``throughput``: the preloaded topic; then waits for the vehicles' last windows to close
  (on each vehicle's idle clock) and checks the windows against the generator.
- ``latency``: prints ``READY`` once assigned, then watches for probe positions (vehicle
  ids ``probe-…``, event time = the time they were produced) and reports p50/p99 of
  produced → queryable.
- ``memory``: prints ``IDLE <VmHWM MB>`` after idling, then consumes ``--events`` positions
  and reports the peak and its growth over idle.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import (
    Result,
    check_windows,
    found_from_rows,
    load_expected,
    peak_rss_mb,
)
from schemas.catalog import VEHICLE_POSITIONS
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.runtime import WorkerService
from streams.batch_consumer import BatchConsumer

WINDOWS_SQL = (
    "SELECT vehicle_id, toUnixTimestamp(window_start) AS ws, positions "
    "FROM transit_vehicle_1m FINAL WHERE NOT startsWith(vehicle_id, 'probe-')"
)


def parse() -> dict[str, object]:
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", default=VEHICLE_POSITIONS.name)
    p.add_argument("--input", choices=["per-message", "batched"], default="per-message")
    p.add_argument("--events", type=int, default=0)
    p.add_argument("--expected", type=Path)
    p.add_argument("--chdb", type=Path, required=True)
    p.add_argument("--group", default="")
    p.add_argument(
        "--mode", choices=["throughput", "latency", "memory", "share"], default="throughput"
    )
    p.add_argument("--probes", type=int, default=100)
    p.add_argument("--timeout", type=float, default=600)
    return vars(p.parse_args())


FIRST_BATCH: list[float] = []


def clock_first_batch() -> None:
    """Start the clock where the peers start theirs, at the first messages consumed: the
    batch consumer starts with the faust app, before ``WorkerService.start`` returns, so a
    clock started after it would miss what was consumed meanwhile."""
    gather = BatchConsumer._gather

    async def timed(self: BatchConsumer, consumer: Any) -> Any:
        fetched = await gather(self, consumer)
        if fetched and not FIRST_BATCH:
            FIRST_BATCH.append(time.perf_counter())
        return fetched

    BatchConsumer._gather = timed  # type: ignore[method-assign]


async def assigned(worker: WorkerService, timeout_s: float = 60) -> float:
    deadline = time.monotonic() + timeout_s
    while not worker.assignment():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker was assigned no partition")
        await asyncio.sleep(0.01)
    return time.perf_counter()


async def count_positions(wh: Warehouse) -> int:
    return int(await wh.scalar("SELECT count() FROM transit_positions"))


async def main() -> None:
    args = parse()
    if args["topic"] != VEHICLE_POSITIONS.name:
        raise SystemExit(f"the worker reads {VEHICLE_POSITIONS.name}, not {args['topic']}")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        app_id=str(args["group"] or f"bench-sitroom-{uuid.uuid4().hex[:6]}"),
        stream_tick_s=1.0,
    )
    clock_first_batch()
    wh = Warehouse(f"chdb://{args['chdb']}")
    await wh.ensure_schema()
    worker = WorkerService(settings, str(args["bootstrap"]), wh)
    await worker.start()
    try:
        mode = args["mode"]
        if mode == "latency":
            await latency(worker, wh, int(args["probes"]), float(args["timeout"]))  # type: ignore[call-overload]
        elif mode == "memory":
            await memory(worker, wh, args)
        elif mode == "share":
            await share(worker, wh, args)
        else:
            await throughput(worker, wh, args)
    finally:
        await worker.stop()
        wh.close()


async def throughput(worker: WorkerService, wh: Warehouse, args: dict[str, object]) -> None:
    total = int(args["events"])  # type: ignore[call-overload]
    await assigned(worker)
    deadline = time.monotonic() + float(args["timeout"])  # type: ignore[arg-type]
    while (stored := await count_positions(wh)) < total:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - FIRST_BATCH[0]
    expected = load_expected(args["expected"])  # type: ignore[arg-type]
    # The last windows close on each vehicle's idle clock: lateness + a tick or two.
    wrong = len(expected)
    settle = time.monotonic() + worker.settings.window_allowed_lateness_s + 15
    while time.monotonic() < settle:
        found = found_from_rows((await wh._run("query", WINDOWS_SQL)).result_rows)
        wrong = check_windows(found, expected)
        if wrong == 0:
            break
        await asyncio.sleep(1)
    Result(
        consumer="sitroom worker",
        input=str(args["input"]),
        events=stored,
        seconds=seconds,
        windows_expected=len(expected),
        windows_wrong=wrong,
        peak_rss_mb=peak_rss_mb(),
    ).emit()


async def caught_up(worker: WorkerService) -> bool:
    batch = worker.batch
    if batch is None or batch.consumer is None or not batch.assignment():
        return False
    for tp in batch.assignment():
        hw = batch.consumer.highwater(tp)
        # Consumed to the end (a commit refused by a rebalance stays behind until more
        # data arrives, so committed offsets are no finish line).
        if hw is None or await batch.consumer.position(tp) < hw:
            return False
    return True


async def share(worker: WorkerService, wh: Warehouse, args: dict[str, object]) -> None:
    """One of several workers of a group: time until its share is stored and the group's
    partitions it owns are committed to their end."""
    try:
        started = await assigned(worker)
    except TimeoutError:
        started = time.perf_counter()  # the other worker holds every partition
    deadline = time.monotonic() + float(args["timeout"])  # type: ignore[arg-type]
    stored, last_change = 0, time.perf_counter()
    while time.monotonic() < deadline:
        now_stored = await count_positions(wh)
        if now_stored != stored:
            stored, last_change = now_stored, time.perf_counter()
        elif time.perf_counter() - last_change > 3 and (
            await caught_up(worker) or not worker.assignment()
        ):
            break
        await asyncio.sleep(0.05)
    if FIRST_BATCH:
        started = FIRST_BATCH[0]
    parts = sorted(p for t, p in worker.assignment() if t == VEHICLE_POSITIONS.name)
    wall = time.time() - time.perf_counter()
    Result(
        consumer="sitroom worker",
        input=str(args["input"]),
        events=stored,
        seconds=last_change - started,
        windows_expected=0,
        windows_wrong=0,
        peak_rss_mb=peak_rss_mb(),
        note=f"partitions {parts}",
        started_at=wall + started,
        ended_at=wall + last_change,
    ).emit()


async def latency(worker: WorkerService, wh: Warehouse, probes: int, timeout_s: float) -> None:
    await assigned(worker)
    print("READY", flush=True)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < probes and time.monotonic() < deadline:
        rows = (
            await wh._run(
                "query",
                "SELECT vehicle_id, toUnixTimestamp64Milli(ts) FROM transit_positions "
                "WHERE startsWith(vehicle_id, 'probe-')",
            )
        ).result_rows
        now = time.time()
        for vid, ts_ms in rows:
            seen.setdefault(vid, now - ts_ms / 1000)
        await asyncio.sleep(0.02)
    lat = sorted(seen.values())
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else lat * 99
    print(
        f"LATENCY {len(lat)} {q[49]:.4f} {q[98]:.4f} {max(lat) if lat else float('nan'):.4f}",
        flush=True,
    )


async def memory(worker: WorkerService, wh: Warehouse, args: dict[str, object]) -> None:
    await assigned(worker)
    await asyncio.sleep(5)
    idle = peak_rss_mb()
    print(f"IDLE {idle:.1f}", flush=True)
    total = int(args["events"])  # type: ignore[call-overload]
    started = time.perf_counter()
    deadline = time.monotonic() + float(args["timeout"])  # type: ignore[arg-type]
    while (stored := await count_positions(wh)) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    seconds = time.perf_counter() - started
    await asyncio.sleep(3)  # a few ticks over the full state
    peak = peak_rss_mb()
    Result(
        consumer="sitroom worker",
        input=str(args["input"]),
        events=stored,
        seconds=seconds,
        windows_expected=0,
        windows_wrong=0,
        peak_rss_mb=peak,
        note=f"idle {idle:.1f} MB, growth {peak - idle:.1f} MB",
    ).emit()


if __name__ == "__main__":
    asyncio.run(main())
