"""ClickHouse tables. Every table is a ReplacingMergeTree keyed so that a replayed batch
replaces rows instead of adding them; read with ``FINAL`` (or the views) for exact results.
"""

from __future__ import annotations

from schemas.ddl_departments import *  # noqa: F403  (one namespace for every table)
from schemas.ddl_departments import DEPARTMENT_DDL, PRICE_OBSERVATIONS, PRICES_CITY, PRICES_DAILY
from schemas.ddl_sensors import *  # noqa: F403
from schemas.ddl_sensors import (
    CCTV_EVENTS,
    FLOOD_REPORTS,
    GAUGE_READINGS,
    GEOFENCE_EVENTS,
    SENSOR_DDL,
    TRAFFIC_5M,
    TRUCK_DAILY,
)

POSITIONS = "transit_positions"
VEHICLE_1M = "transit_vehicle_1m"
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
    "version",
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
CHECKPOINT_COLUMNS = (
    "cluster_id", "group_id", "topic", "partition", "entity", "offset", "state", "saved_at",
)  # fmt: skip
DEAD_LETTERS = "dead_letters"
# Tables with a String column written from raw bytes: JSON cannot carry bytes, so their
# rows take clickhouse-connect's binary path (schemas/insert_encoding.py).
RAW_BYTES_TABLES = frozenset({DEAD_LETTERS})
DEAD_LETTER_COLUMNS = (
    "partition", "offset", "received_at", "reason", "detail", "source_topic",
    "source_partition", "source_offset", "item_index", "connector", "location", "raw",
    "raw_bytes", "cluster_id",
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
        limit_kmh Float32,
        version UInt32 COMMENT 'fixes in the window: a late fix re-emits the row with a higher one'
    ) ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (vehicle_id, window_start)
    """,
    # Corridor windows are the sum of their vehicles' windows, so a correction of a
    # vehicle's window corrects its corridor too, and no worker holds cross-vehicle state.
    f"""
    CREATE OR REPLACE VIEW {CORRIDOR_1M} AS
    SELECT corridor, window_start,
           sum(positions) AS positions,
           count() AS vehicles,
           sum(mean_speed_kmh * speed_samples) / nullIf(sum(speed_samples), 0) AS mean_speed_kmh,
           max(max_speed_kmh) AS max_speed_kmh,
           sum(seconds_over_limit) AS seconds_over_limit
    FROM {VEHICLE_1M} FINAL
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
        state String COMMENT 'empty: the entity left state',
        saved_at DateTime64(6, 'UTC'),
        entity String COMMENT '\'\': the head row (offset, state without per-entity maps)'
    ) ENGINE = ReplacingMergeTree(saved_at)
    ORDER BY (cluster_id, group_id, topic, partition, entity)
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
        offset Int64 COMMENT 'of sitroom.deadletter: with partition and cluster_id, the identity',
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
        raw_bytes UInt32,
        cluster_id String COMMENT 'of the broker: a new (embedded) broker restarts offsets at 0'
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(received_at)
    ORDER BY (partition, offset, cluster_id)
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
# Tables whose engine gained a version column: an older copy is rebuilt once (renamed,
# recreated, its rows copied with version 0, dropped) because an engine cannot be altered.
# Prices' rows were versioned by the wall clock, which let a worker with a slower clock (or
# a replay after a crash) hide a newer row.
VERSIONED_REBUILDS: tuple[str, ...] = (
    VEHICLE_1M,
    TRAFFIC_5M,
    TRUCK_DAILY,
    PRICES_DAILY,
    PRICES_CITY,
)
MIGRATIONS: tuple[str, ...] = (
    "DROP TABLE IF EXISTS transit_corridor_1m_part",
    f"ALTER TABLE {POSITIONS} ADD COLUMN IF NOT EXISTS kecamatan LowCardinality(String)",
    *_ALARM_MIGRATIONS,
    # A letter's identity gained the broker's cluster id; ClickHouse lets a column added in
    # the same ALTER join the end of the sorting key. Idempotent: a second run changes nothing.
    f"ALTER TABLE {DEAD_LETTERS} ADD COLUMN IF NOT EXISTS cluster_id String,"
    " MODIFY ORDER BY (partition, offset, cluster_id)",
    # Checkpoints gained per-entity rows (streams/checkpoints.py); the old rows are heads.
    f"ALTER TABLE {CHECKPOINTS} ADD COLUMN IF NOT EXISTS entity String,"
    " MODIFY ORDER BY (cluster_id, group_id, topic, partition, entity)",
    # Citizens' flood reports: the depth became optional (most real reports give none)
    # and a photo link was added. On an older table the first start rewrites the column
    # once (a mutation; no key column is involved); later starts change nothing.
    f"ALTER TABLE {FLOOD_REPORTS} MODIFY COLUMN depth_cm Nullable(Float32)"
    " COMMENT 'NULL when the citizen gave no depth'",
    f"ALTER TABLE {FLOOD_REPORTS} ADD COLUMN IF NOT EXISTS photo_url Nullable(String)",
    # Raw tables without an ingestion time get one for their TTL; filled on insert.
    *(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS stored_at DateTime('UTC') DEFAULT now()"
        " COMMENT 'when the row was stored: the raw TTL counts from it'"
        for table in (CCTV_EVENTS, GEOFENCE_EVENTS, PRICE_OBSERVATIONS)
    ),
)
# Raw event tables and the column their TTL (settings.raw_ttl_days) counts from: the time
# a row was stored, not its event time, so a replay of an old capture or a historical
# price table is kept for the TTL like live data instead of expiring on insert.
# Warehouse.ensure_schema applies it with ALTER, so old and new tables get it alike.
RAW_TTL_COLUMNS: dict[str, str] = {
    POSITIONS: "ingested_at",
    GAUGE_READINGS: "ingested_at",
    CCTV_EVENTS: "stored_at",
    GEOFENCE_EVENTS: "stored_at",
    PRICE_OBSERVATIONS: "stored_at",
}
