"""Peer: the faust "textbook" pattern doing the benchmark job.

    python bench/peers/faust_textbook.py --bootstrap HOST:PORT --topic T --input per-message \\
        --events N --expected expected.json --chdb DIR [--group G]

What the faust docs teach: one ``faust.App`` (memory store, tables backed by changelog
topics), a ``faust.Record`` value type, an agent iterating the stream one event at a time,
the vehicle's previous fix in a table, and a windowed table
``app.Table(...).tumbling(60, expires=...)`` placed on the payload's event time with
``relative_to_field``, whose ``on_window_close`` callback writes the closed windows.
Positions are buffered and inserted in batches.

faust closes windows from a wall-clock timer (every ``table_cleanup_interval``), when their
end is older than ``time.time() - expires``; on replayed (past) data that closes windows
that are still filling, and it reports each window start only once per table, for one
partition. So this peer is expected to be slow and to get windows wrong; it is measured as
it is. It stops when every event is consumed and stored, waits ``GRACE_S`` of idle time
for the cleanup timer to close windows, then checks.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import clickhouse_connect
import faust

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

BATCH_ROWS = 5_000  # positions per insert
FLUSH_S = 1.0  # a timer inserts whatever is buffered at least this often
CLEANUP_S = 1.0  # table_cleanup_interval: faust's default is 30 s; 1 s closes windows sooner
EXPIRES = timedelta(seconds=2 * WINDOW_S)  # keep a window one more minute for late fixes
GRACE_S = 5.0  # idle time after the last event, for the cleanup timer to close windows


class Position(faust.Record, serializer="json", isodates=True):
    vehicle_id: str
    lat: float
    lon: float
    timestamp: datetime


async def run(args: dict[str, Any], client: Any, datadir: str, watch: Stopwatch) -> int:
    """Consume and store every event, wait ``GRACE_S``; return the events consumed."""
    events = int(args["events"])
    positions: list[list[Any]] = []
    windows: list[list[Any]] = []
    consumed = stored = 0
    all_stored = asyncio.Event()
    failed: list[BaseException] = []

    def flush() -> None:
        nonlocal stored
        if windows:
            client.insert("bench_windows", windows, column_names=list(PEER_WINDOW_COLUMNS))
            windows.clear()
            if not all_stored.is_set():
                watch.stored()
        if positions:
            client.insert("bench_positions", positions, column_names=list(PEER_POSITION_COLUMNS))
            stored += len(positions)
            positions.clear()
            watch.stored()
            if stored >= events:
                all_stored.set()

    app = faust.App(
        str(args["group"] or f"bench-faust-{uuid.uuid4().hex[:8]}"),
        broker=f"kafka://{args['bootstrap']}",
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        topic_disable_leader=True,
        topic_partitions=6,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=CLEANUP_S,
        # tansu answers JoinGroup after half the session timeout; only shortens the start.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
    )
    topic = app.topic(str(args["topic"]), key_type=str, value_type=Position)

    def on_window_close(key: tuple[str, tuple[float, float]], value: list[Any]) -> None:
        vehicle_id, (start, _end) = key
        windows.append(
            [vehicle_id, datetime.fromtimestamp(round(start), UTC), int(value[0]), value[1]]
        )

    last_fix = app.Table("last_fix", default=None)
    per_minute = (
        app.Table("vehicle_minute", default=lambda: [0, None], on_window_close=on_window_close)
        .tumbling(WINDOW_S, expires=EXPIRES)
        .relative_to_field(Position.timestamp)
    )

    @app.agent(topic)
    async def process(stream: faust.StreamT[Position]) -> None:
        try:
            await per_event(stream)
        except BaseException as exc:
            failed.append(exc)
            all_stored.set()
            raise

    async def per_event(stream: faust.StreamT[Position]) -> None:
        nonlocal consumed
        async for pos in stream:
            watch.consumed()
            t = pos.timestamp.timestamp()
            speed = None
            prev = last_fix.get(pos.vehicle_id)
            if prev is not None and t > prev[2]:
                speed = haversine_m(prev[0], prev[1], pos.lat, pos.lon) / (t - prev[2]) * 3.6
            last_fix[pos.vehicle_id] = [pos.lat, pos.lon, t]
            count, top = per_minute[pos.vehicle_id].value()
            if speed is not None and (top is None or speed > top):
                top = speed
            per_minute[pos.vehicle_id] = [count + 1, top]
            positions.append([pos.vehicle_id, pos.timestamp, pos.lat, pos.lon, speed])
            consumed += 1
            if len(positions) >= BATCH_ROWS or consumed >= events:
                flush()

    @app.timer(FLUSH_S)
    async def flush_buffers() -> None:
        flush()

    await app.start()
    try:
        await all_stored.wait()
        if failed:
            raise SystemExit(f"faust_textbook: the agent crashed: {failed[0]!r}")
        await asyncio.sleep(GRACE_S)  # idle: let the cleanup timer close windows
        flush()
    finally:
        app.conf.stream_wait_empty = False
        try:
            await asyncio.wait_for(app.stop(), 30)
        except Exception:
            logging.getLogger(__name__).warning("faust did not stop cleanly", exc_info=True)

    return consumed


def main() -> None:
    args = consumer_args(__doc__ or "")
    if args["input"] != "per-message":
        sys.exit("faust_textbook: only --input per-message (one Position record per message)")
    chdb_dir = Path(str(args["chdb"]))
    chdb_dir.mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_dir}")
    for ddl in PEER_DDL:
        client.command(ddl)
    watch = Stopwatch()
    datadir = tempfile.mkdtemp(prefix="faust-", dir=chdb_dir.parent)
    consumed = asyncio.run(run(args, client, datadir, watch))

    emit_peer_result(
        client,
        "faust-textbook",
        "per-message",
        consumed,
        watch.seconds,
        Path(str(args["expected"])),
        note=(
            f"faust-streaming {faust.__version__}, memory store, windows closed by wall "
            f"clock (cleanup every {CLEANUP_S:g} s, expires {EXPIRES.total_seconds():g} s)"
        ),
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    # Every table update is a changelog write; "producer buffer full" is that backpressure,
    # logged once per message at this rate.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    main()
