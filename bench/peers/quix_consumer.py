"""Peer: Quix Streams 3.x doing the benchmark job, written the way Quix's docs show it.

    python bench/peers/quix_consumer.py --bootstrap HOST:PORT --topic T --input per-message \\
        --events N --expected expected.json --chdb DIR [--group G]

One ``Application`` (consumer group, ``auto_offset_reset="earliest"``, RocksDB state and
changelog topics as by default), a topic whose ``timestamp_extractor`` reads the payload's
event time, the speed derived by a stateful ``apply`` (state keyed by the message key, the
vehicle), 1-minute event-time tumbling windows with ``Count`` and ``Max`` aggregations
emitted with ``.final()``, and two ``BatchingSink`` subclasses that insert each checkpoint's
batch into chdb. Only one-event-per-message input: Quix windows group by the message key,
and batched messages (one JSON array per partition) would need a ``group_by`` repartition.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import clickhouse_connect
from quixstreams import Application
from quixstreams.dataframe.windows import Count, Max
from quixstreams.sinks import BatchingSink, SinkBatch
from quixstreams.state import State

from bench.common import (
    PEER_DDL,
    PEER_POSITION_COLUMNS,
    PEER_WINDOW_COLUMNS,
    Stopwatch,
    consumer_args,
    emit_peer_result,
)
from schemas.geo import haversine_m

WINDOW_MS = 60_000


def event_time_ms(value: Any, headers: Any, timestamp: int, timestamp_type: Any) -> int:
    """The topic's timestamp extractor: windows run on the fix's time, not Kafka's."""
    return int(datetime.fromisoformat(value["timestamp"]).timestamp() * 1000)


class ChdbSink(BatchingSink):
    """Inserts each checkpoint's batch (one per topic partition) in one chdb insert."""

    def __init__(self, client: Any, table: str, columns: tuple[str, ...], done: Any) -> None:
        super().__init__()
        self.client, self.table, self.columns, self.done = client, table, columns, done

    def write(self, batch: SinkBatch) -> None:
        rows = [item.value for item in batch]
        if rows:
            self.client.insert(self.table, rows, column_names=list(self.columns))
            self.done(len(rows))


def check_topic_config(bootstrap: str, topic: str) -> None:
    """Quix derives its changelog topics' config from the input topic's ``retention.ms``.
    Apache Kafka reports the broker default; tansu reports only configs set explicitly, so
    the topic must be created with ``retention.ms`` set, or Quix fails with KeyError."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.describe_configs([ConfigResource("topic", topic)]).values():
        if "retention.ms" not in future.result(timeout=30):
            sys.exit(
                f"quix_consumer: topic {topic!r} reports no retention.ms (tansu lists only "
                "explicit configs); create it with topic config retention.ms set"
            )


def main() -> None:
    args = consumer_args(__doc__ or "")
    if args["input"] != "per-message":
        sys.exit("quix_consumer: only --input per-message (windows group by the message key)")
    check_topic_config(str(args["bootstrap"]), str(args["topic"]))
    events = int(str(args["events"]))
    chdb_dir = Path(str(args["chdb"]))
    chdb_dir.mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_dir}")
    for ddl in PEER_DDL:
        client.command(ddl)

    watch = Stopwatch()
    consumed = 0
    stored_positions = 0
    state_dir = Path(tempfile.mkdtemp(prefix="quix-state-", dir=chdb_dir.parent))
    app = Application(
        broker_address=str(args["bootstrap"]),
        consumer_group=str(args["group"] or f"bench-quix-{uuid.uuid4().hex[:8]}"),
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
        # tansu answers JoinGroup after half the session timeout (librdkafka's default is
        # 45 s); this only shortens the start, which the stopwatch does not count.
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    )

    def positions_stored(n: int) -> None:
        nonlocal stored_positions
        stored_positions += n
        watch.stored()

    def windows_stored(n: int) -> None:
        watch.stored()

    topic = app.topic(
        str(args["topic"]),
        value_deserializer="json",
        key_deserializer="str",
        timestamp_extractor=event_time_ms,
    )
    sdf = app.dataframe(topic)

    def with_speed(value: dict[str, Any], state: State) -> dict[str, Any]:
        nonlocal consumed
        watch.consumed()
        lat, lon = value["lat"], value["lon"]
        ts = datetime.fromisoformat(value["timestamp"])
        t = ts.timestamp()
        speed = None
        prev = state.get("prev")
        if prev is not None and t > prev[2]:
            speed = haversine_m(prev[0], prev[1], lat, lon) / (t - prev[2]) * 3.6
        state.set("prev", [lat, lon, t])
        consumed += 1
        if consumed >= events:
            # The loop ends once this message went through every branch; the final
            # checkpoint then flushes both sinks (Application.run commits on the way out).
            app.stop()
        return {
            "vehicle_id": value["vehicle_id"],
            "ts": ts,
            "lat": lat,
            "lon": lon,
            "speed_kmh": speed,
        }

    sdf = sdf.apply(with_speed, stateful=True)
    sdf.apply(lambda p: [p[c] for c in PEER_POSITION_COLUMNS]).sink(
        ChdbSink(client, "bench_positions", PEER_POSITION_COLUMNS, positions_stored)
    )
    windows = (
        sdf.tumbling_window(WINDOW_MS)
        .agg(positions=Count(), max_speed_kmh=Max("speed_kmh"))
        .final()
    )
    windows.apply(
        lambda w, key, ts, headers: [
            key,
            datetime.fromtimestamp(w["start"] / 1000, UTC),
            w["positions"],
            w["max_speed_kmh"],
        ],
        metadata=True,
    ).sink(ChdbSink(client, "bench_windows", PEER_WINDOW_COLUMNS, windows_stored))

    app.run()
    if stored_positions < events:
        sys.exit(f"quix_consumer: stopped with {stored_positions}/{events} positions stored")

    emit_peer_result(
        client,
        "quix-streams",
        "per-message",
        consumed,
        watch.seconds,
        Path(str(args["expected"])),
        note=f"quixstreams {_version()}, RocksDB state + changelog topics, final() windows",
    )


def _version() -> str:
    import quixstreams

    return str(quixstreams.__version__)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
