"""Throughput and latency of the transit worker against a plain aiokafka loop.

    python bench/transit_throughput.py [--events 200000] [--buses 500] [--per-message 0]

Starts its own tansu broker (or uses SITROOM_KAFKA_BOOTSTRAP) and a chdb engine in a temp
directory. ``--per-message 1`` publishes one position per Kafka message instead of the
connectors' partition batches, to show what batching buys.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.brt_simulator import BrtSimulator
from connectors.publisher import encode_batch, partition_for
from schemas.catalog import VEHICLE_POSITIONS
from schemas.settings import Settings
from schemas.transit import VehiclePosition
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.kafka_admin import create_topics
from sitroom.runtime import WorkerService
from streams.metrics import MESSAGES_CONSUMED
from streams.transit_logic import Outputs, TransitProcessor, TransitRules
from streams.validation import check_position, decode_positions

TOPIC = VEHICLE_POSITIONS.name


def progress(label: str, done: int, total: int) -> None:
    print(
        f"\r  {label}: {done:,}/{total:,} ({100 * done / max(total, 1):.0f}%)",
        end="",
        file=sys.stderr,
        flush=True,
    )


async def preload(bootstrap: str, events: int, buses: int, per_message: bool) -> int:
    corridors = 7
    sim = BrtSimulator(
        seed=1,
        buses_per_corridor=max(1, buses // corridors),
        realtime=False,
        start=time.time() - 86400,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, max_request_size=8 << 20
    )
    await producer.start()
    sent = messages = 0
    t = sim.start
    try:
        while sent < events:
            tick = sim.tick(t, 5.0)[: events - sent]
            t += 5.0
            groups: dict[int, list[VehiclePosition]] = {}
            for p in tick:
                groups.setdefault(
                    partition_for(p.vehicle_id, VEHICLE_POSITIONS.partitions), []
                ).append(p)
            for part, group in groups.items():
                if per_message:
                    for p in group:
                        await producer.send(
                            TOPIC, p.model_dump_json(exclude_none=True).encode(), partition=part
                        )
                        messages += 1
                else:
                    await producer.send(TOPIC, encode_batch(group), partition=part)
                    messages += 1
            sent += len(tick)
            if sent % 20_000 < len(tick):
                progress("preload", sent, events)
        await producer.flush()
    finally:
        await producer.stop()
    print(file=sys.stderr)
    return messages


async def plain_loop(bootstrap: str, settings: Settings, events: int) -> float:
    """Consume, decode, validate and run the transit logic per partition; no ClickHouse."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=8 << 20
    )
    await consumer.start()
    tps = [TopicPartition(TOPIC, p) for p in range(VEHICLE_POSITIONS.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    rules = TransitRules.from_settings(settings)
    procs = {tp.partition: TransitProcessor(rules, tp.partition) for tp in tps}
    out = Outputs()
    seen = 0
    now = datetime.now(UTC)
    wall = now.timestamp()
    started = time.perf_counter()
    try:
        while seen < events:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                proc = procs[tp.partition]
                for rec in records:
                    positions, rejected = decode_positions(rec.value)
                    seen += len(positions) + len(rejected)
                    for p in positions:
                        if (
                            check_position(p, settings.service_area, now, settings.max_future_s)
                            is None
                        ):
                            proc.apply(p, out, wall)
            out = Outputs()  # drop rows: this loop measures the consume+logic path only
    finally:
        await consumer.stop()
    return time.perf_counter() - started


async def worker_run(
    bootstrap: str, settings: Settings, wh: Warehouse, events: int
) -> tuple[float, float]:
    worker = WorkerService(settings, bootstrap, wh)
    t_start = time.perf_counter()
    await worker.start()
    first = None
    stored = 0
    try:
        while stored < events:
            if first is None and MESSAGES_CONSUMED.labels(TOPIC)._value.get() > 0:
                first = time.perf_counter()
            stored = int(await wh.scalar("SELECT count() FROM transit_positions"))
            progress("worker stored", stored, events)
            await asyncio.sleep(0.2)
        done = time.perf_counter()
    finally:
        print(file=sys.stderr)
        await worker.stop()
    return done - (first or t_start), (first or t_start) - t_start


async def latency_run(
    bootstrap: str, settings: Settings, wh: Warehouse, probes: int, size: int
) -> list[float]:
    """Produce one batch every 200 ms; time until its rows are queryable.

    The worker's new group starts at the beginning of the topic, so one unrecorded probe per
    partition first waits out that backlog: probes then measure a caught-up worker."""
    worker = WorkerService(settings, bootstrap, wh)
    await worker.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    latencies: list[float] = []
    try:
        await asyncio.sleep(3)
        for k in range(-VEHICLE_POSITIONS.partitions, probes):
            now = datetime.now(UTC)
            tag = f"probe{k}-"
            group = [
                VehiclePosition(vehicle_id=f"{tag}{i}", lat=-6.99, lon=110.42, timestamp=now)
                for i in range(size)
            ]
            sent = time.perf_counter()
            await producer.send_and_wait(
                TOPIC, encode_batch(group), partition=k % VEHICLE_POSITIONS.partitions
            )
            while (
                await wh.scalar(
                    "SELECT count() FROM transit_positions WHERE startsWith(vehicle_id, {t:String})",
                    {"t": tag},
                )
                < size
            ):
                await asyncio.sleep(0.01)
            if k >= 0:
                latencies.append(time.perf_counter() - sent)
                progress("latency probes", k + 1, probes)
            await asyncio.sleep(0.2)
    finally:
        print(file=sys.stderr)
        await producer.stop()
        await worker.stop()
    return latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--buses", type=int, default=500)
    parser.add_argument("--per-message", type=int, choices=[0, 1], default=0)
    parser.add_argument("--probes", type=int, default=50)
    args = parser.parse_args()

    settings = Settings(_env_file=None, app_id=f"bench-{uuid.uuid4().hex[:6]}", stream_tick_s=1.0)  # type: ignore[call-arg]
    broker = EmbeddedBroker()
    bootstrap = settings.kafka_bootstrap or broker.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            wh = Warehouse(f"chdb://{tmp}")
            await wh.ensure_schema()
            await create_topics(bootstrap)
            messages = await preload(bootstrap, args.events, args.buses, bool(args.per_message))
            plain_s = await plain_loop(bootstrap, settings, args.events)
            worker_s, join_s = await worker_run(bootstrap, settings, wh, args.events)
            latency_settings = settings.model_copy(update={"app_id": settings.app_id + "-lat"})
            await wh._run("command", "TRUNCATE TABLE transit_positions")
            lat = await latency_run(bootstrap, latency_settings, wh, args.probes, 100)
            wh.close()
    finally:
        broker.stop()

    plain_rate = args.events / plain_s
    worker_rate = args.events / worker_s
    print(
        f"\nevents: {args.events:,} in {messages:,} Kafka messages "
        f"({args.events / messages:.1f} per message), {args.buses} buses, 6 partitions"
    )
    print(f"{'path':<58}{'events/s':>12}")
    print(f"{'plain aiokafka loop: consume+decode+validate+logic':<58}{plain_rate:>12,.0f}")
    print(f"{'sitroom worker: consume -> rows queryable in ClickHouse':<58}{worker_rate:>12,.0f}")
    print(
        f"ratio worker/plain: {worker_rate / plain_rate:.2f}   (worker group join took {join_s:.1f} s, excluded)"
    )
    print(
        f"latency produce -> queryable, {len(lat)} batches of 100: "
        f"p50 {pct(lat, 50) * 1000:.0f} ms, p99 {pct(lat, 99) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
