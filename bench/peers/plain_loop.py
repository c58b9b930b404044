"""The baseline: a plain aiokafka ``getmany`` loop doing the job by hand.

msgspec decode, speed per vehicle (haversine over consecutive fixes), 1-minute windows per
vehicle closed on the vehicle's own event time, positions and closed windows inserted into
chdb in one insert per table per batch, offsets committed after the insert. No reordering,
no corrections, no alarms, no dead letters: the least any consumer must do.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aiokafka import AIOKafkaConsumer

from bench.common import (
    PEER_DDL,
    PEER_POSITION_COLUMNS,
    PEER_WINDOW_COLUMNS,
    WINDOW_S,
    Stopwatch,
    consumer_args,
    emit_peer_result,
)
from schemas.geo import haversine_m


class Fix(msgspec.Struct):
    vehicle_id: str
    lat: float
    lon: float
    timestamp: datetime


one = msgspec.json.Decoder(Fix)
many = msgspec.json.Decoder(list[Fix])


async def main() -> None:
    args = consumer_args(__doc__ or "")
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{args['chdb']}")
    for ddl in PEER_DDL:
        client.command(ddl)

    def insert(table: str, rows: list[list[object]], columns: tuple[str, ...]) -> None:
        client.insert(table, rows, column_names=columns)

    consumer = AIOKafkaConsumer(
        str(args["topic"]),
        bootstrap_servers=str(args["bootstrap"]),
        group_id=str(args["group"] or "plain-loop"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    total = int(args["events"])  # type: ignore[call-overload]
    last: dict[str, tuple[float, float, float]] = {}  # vehicle → (ts, lat, lon)
    windows: dict[str, tuple[int, int, float | None]] = {}  # vehicle → (start, count, max)
    seen = 0
    watch = Stopwatch()
    loop = asyncio.get_running_loop()
    try:
        while seen < total:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            if not fetched:
                continue
            watch.consumed()
            positions: list[list[object]] = []
            closed: list[list[object]] = []
            for records in fetched.values():
                for rec in records:
                    value = rec.value or b""
                    fixes = many.decode(value) if value[:1] == b"[" else [one.decode(value)]
                    for f in fixes:
                        ts = f.timestamp.timestamp()
                        speed = None
                        prev = last.get(f.vehicle_id)
                        if prev is not None and ts > prev[0]:
                            speed = (
                                haversine_m(prev[1], prev[2], f.lat, f.lon) / (ts - prev[0]) * 3.6
                            )
                        last[f.vehicle_id] = (ts, f.lat, f.lon)
                        positions.append([f.vehicle_id, f.timestamp, f.lat, f.lon, speed])
                        start = int(ts // WINDOW_S) * WINDOW_S
                        w = windows.get(f.vehicle_id)
                        if w is not None and w[0] != start:
                            closed.append(
                                [f.vehicle_id, datetime.fromtimestamp(w[0], UTC), w[1], w[2]]
                            )
                            w = None
                        if w is None:
                            w = (start, 0, None)
                        top = (
                            w[2] if speed is None or (w[2] is not None and w[2] >= speed) else speed
                        )
                        windows[f.vehicle_id] = (start, w[1] + 1, top)
                    seen += len(fixes)
            await loop.run_in_executor(
                None, insert, "bench_positions", positions, PEER_POSITION_COLUMNS
            )
            if closed:
                await loop.run_in_executor(
                    None, insert, "bench_windows", closed, PEER_WINDOW_COLUMNS
                )
            await consumer.commit()
            watch.stored()
    finally:
        await consumer.stop()
    emit_peer_result(client, "plain aiokafka loop", str(args["input"]), seen, watch.seconds,
                     Path(str(args["expected"])))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
