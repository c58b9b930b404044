"""ClickHouse tables. Every table is a ReplacingMergeTree keyed so that a replayed batch
replaces rows instead of adding them; read with ``FINAL`` (or the views) for exact results.
"""

from __future__ import annotations

from schemas.ddl_departments import *  # noqa: F403  (one namespace for every table)
from schemas.ddl_departments import DEPARTMENT_DDL
from schemas.ddl_sensors import *  # noqa: F403
from schemas.ddl_sensors import SENSOR_DDL

POSITIONS = "transit_positions"
VEHICLE_1M = "transit_vehicle_1m"
CORRIDOR_1M_PART = "transit_corridor_1m_part"
CORRIDOR_1M = "transit_corridor_1m"
ALARMS = "alarms"
ALARM_TRANSITIONS = "alarm_transitions"
CHECKPOINTS = "stream_checkpoints"
SOURCE_STATUS = "source_status"
SOURCE_STATUS_COLUMNS = (
    "connector", "instance", "state", "topics", "events_total", "last_event_at",
    "started_at", "heartbeat_at",
)  # fmt: skip
POSITION_COLUMNS = (
    "vehicle_id",
    "ts",
    "label",
    "route_id",
    "corridor",
    "trip_id",
    "lat",
    "lon",
    "bearing",
    "reported_speed_kmh",
    "speed_kmh",
    "occupancy",
    "source",
    "bad_fix",
    "ingested_at",
    "kecamatan",
)
VEHICLE_1M_COLUMNS = (
    "vehicle_id",
    "window_start",
    "corridor",
    "positions",
    "speed_samples",
    "mean_speed_kmh",
    "max_speed_kmh",
    "seconds_over_limit",
    "limit_kmh",
)
CORRIDOR_1M_PART_COLUMNS = (
    "corridor",
    "window_start",
    "partition",
    "positions",
    "vehicles",
    "speed_samples",
    "speed_sum",
    "max_speed_kmh",
    "seconds_over_limit",
)
ALARM_COLUMNS = (
    "id",
    "kind",
    "entity",
    "severity",
    "state",
    "started_at",
    "last_seen",
    "cleared_at",
    "value",
    "threshold",
    "version",
    "context",
    "domain",
    "level",
    "reason",
    "acknowledged_by",
    "acknowledged_at",
    "cleared_by",
)
CHECKPOINT_COLUMNS = ("cluster_id", "group_id", "topic", "partition", "offset", "state", "saved_at")
DEAD_LETTERS = "dead_letters"
DEAD_LETTER_COLUMNS = (
    "partition", "offset", "received_at", "reason", "detail", "source_topic",
    "source_partition", "source_offset", "item_index", "connector", "location", "raw",
    "raw_bytes",
)  # fmt: skip

_ALARM_FIELDS = """
        id String,
        kind LowCardinality(String),
        entity String,
        severity LowCardinality(String),
        state LowCardinality(String),
        started_at DateTime64(3, 'UTC'),
        last_seen DateTime64(3, 'UTC'),
        cleared_at Nullable(DateTime64(3, 'UTC')),
        value Float64,
        threshold Float64,
        version UInt32 COMMENT 'increases with every transition',
        context String COMMENT 'JSON object',
        domain LowCardinality(String),
        level LowCardinality(String),
        reason LowCardinality(String),
        acknowledged_by Nullable(String),
        acknowledged_at Nullable(DateTime64(3, 'UTC')),
        cleared_by Nullable(String)
"""

DDL: tuple[str, ...] = (
    f"""
    CREATE TABLE IF NOT EXISTS {POSITIONS} (
        vehicle_id String,
        ts DateTime64(3, 'UTC'),
        label Nullable(String),
        route_id Nullable(String),
        corridor LowCardinality(String),
        trip_id Nullable(String),
        lat Float64,
        lon Float64,
        bearing Nullable(Float32),
        reported_speed_kmh Nullable(Float32),
        speed_kmh Nullable(Float32) COMMENT 'reported, else derived from the previous fix',
        occupancy LowCardinality(String),
        source LowCardinality(String),
        bad_fix UInt8 COMMENT '1 when the derived speed was implausible (a GPS jump)',
        ingested_at DateTime64(3, 'UTC'),
        kecamatan LowCardinality(String) COMMENT 'empty outside Kota Semarang'
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(ts)
    ORDER BY (vehicle_id, ts)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {VEHICLE_1M} (
        vehicle_id String,
        window_start DateTime('UTC'),
        corridor LowCardinality(String),
        positions UInt32,
        speed_samples UInt32,
        mean_speed_kmh Nullable(Float32),
        max_speed_kmh Nullable(Float32),
        seconds_over_limit Float32,
        limit_kmh Float32
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (vehicle_id, window_start)
    """,
    # One partial row per Kafka partition: vehicles are partitioned disjointly, so the
    # view's sums are exact and each worker writes only its own rows.
    f"""
    CREATE TABLE IF NOT EXISTS {CORRIDOR_1M_PART} (
        corridor LowCardinality(String),
        window_start DateTime('UTC'),
        partition UInt16,
        positions UInt32,
        vehicles UInt32,
        speed_samples UInt32,
        speed_sum Float64,
        max_speed_kmh Nullable(Float32),
        seconds_over_limit Float32
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (corridor, window_start, partition)
    """,
    f"""
    CREATE VIEW IF NOT EXISTS {CORRIDOR_1M} AS
    SELECT corridor, window_start,
           sum(positions) AS positions,
           sum(vehicles) AS vehicles,
           sum(speed_sum) / nullIf(sum(speed_samples), 0) AS mean_speed_kmh,
           max(max_speed_kmh) AS max_speed_kmh,
           sum(seconds_over_limit) AS seconds_over_limit
    FROM {CORRIDOR_1M_PART} FINAL
    GROUP BY corridor, window_start
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {ALARMS} ({_ALARM_FIELDS})
    ENGINE = ReplacingMergeTree(version)
    ORDER BY id
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {ALARM_TRANSITIONS} ({_ALARM_FIELDS})
    ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(started_at)
    ORDER BY (id, version)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
        cluster_id String,
        group_id String,
        topic String,
        partition UInt32,
        offset Int64 COMMENT 'last offset whose effects are in state',
        state String,
        saved_at DateTime64(6, 'UTC')
    ) ENGINE = ReplacingMergeTree(saved_at)
    ORDER BY (cluster_id, group_id, topic, partition)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {SOURCE_STATUS} (
        connector LowCardinality(String),
        instance String COMMENT 'host:pid of the connector process',
        state LowCardinality(String) COMMENT 'running, finished (replay done) or stopped',
        topics Array(String),
        events_total UInt64,
        last_event_at Nullable(DateTime64(3, 'UTC')),
        started_at DateTime64(3, 'UTC'),
        heartbeat_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(heartbeat_at)
    ORDER BY (connector, instance)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {DEAD_LETTERS} (
        partition UInt32 COMMENT 'of sitroom.deadletter',
        offset Int64 COMMENT 'of sitroom.deadletter: the identity of the letter',
        received_at DateTime64(3, 'UTC'),
        reason LowCardinality(String),
        detail String,
        source_topic LowCardinality(String) COMMENT 'empty when a connector rejected a record',
        source_partition Nullable(Int32),
        source_offset Nullable(Int64),
        item_index Nullable(Int32),
        connector LowCardinality(String) COMMENT 'empty when the worker rejected an event',
        location String COMMENT 'where in the source, e.g. file:line',
        raw String COMMENT 'the original bytes (first 64 KiB; withheld for personal data)',
        raw_bytes UInt32
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(received_at)
    ORDER BY (partition, offset)
    TTL toDateTime(received_at) + INTERVAL 90 DAY
    """,
    *SENSOR_DDL,
    *DEPARTMENT_DDL,
)

# Columns added after a table first shipped: applied on every start, idempotent, so an
# existing data directory catches up with the code.
_ALARM_MIGRATIONS = tuple(
    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}"
    for table in (ALARMS, ALARM_TRANSITIONS)
    for column in (
        "domain LowCardinality(String)",
        "level LowCardinality(String)",
        "reason LowCardinality(String)",
        "acknowledged_by Nullable(String)",
        "acknowledged_at Nullable(DateTime64(3, 'UTC'))",
        "cleared_by Nullable(String)",
    )
)
MIGRATIONS: tuple[str, ...] = (
    f"ALTER TABLE {POSITIONS} ADD COLUMN IF NOT EXISTS kecamatan LowCardinality(String)",
    *_ALARM_MIGRATIONS,
)
