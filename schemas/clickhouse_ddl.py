"""ClickHouse tables. Every table is a ReplacingMergeTree keyed so that a replayed batch
replaces rows instead of adding them; read with ``FINAL`` (or the views) for exact results.
"""

from __future__ import annotations

from schemas.ddl_departments import *  # noqa: F403  (one namespace for every table)
from schemas.ddl_departments import DEPARTMENT_DDL

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
GAUGE_READINGS = "flood_gauge_readings"
FLOOD_REPORTS = "flood_reports"
FLOOD_STATUS = "flood_kecamatan_status"

GEOFENCE_EVENTS = "waste_geofence_events"
TRUCK_DAILY = "waste_truck_daily"
GEOFENCE_COLUMNS = ("truck_id", "ts", "site_id", "site_kind", "event")
DAILY_COLUMNS = ("truck_id", "day", "km", "tpa_trips", "fixes", "updated_at")
CCTV_INCIDENTS = "cctv_incidents"
CCTV_EVENTS = "cctv_events"
INCIDENT_COLUMNS = (
    "incident_id", "camera_id", "kind", "kecamatan", "started_at", "last_seen", "events",
    "max_confidence", "state", "version",
)  # fmt: skip
CAMERA_EVENT_COLUMNS = (
    "camera_id",
    "ts",
    "kind",
    "confidence",
    "plate",
    "people",
    "kecamatan",
    "incident_id",
)
TRAFFIC_5M = "traffic_segment_5m"
TRAFFIC_COLUMNS = (
    "segment_id",
    "window_start",
    "road",
    "kecamatan",
    "observations",
    "volume",
    "mean_speed_kmh",
    "occupancy_pct",
    "speed_ratio",
    "congestion",
)
GAUGE_COLUMNS = ("station_id", "kind", "ts", "value", "river", "kecamatan", "source", "ingested_at")
REPORT_COLUMNS = (
    "report_id",
    "ts",
    "lat",
    "lon",
    "depth_cm",
    "kecamatan",
    "note",
    "source",
    "ingested_at",
)
STATUS_COLUMNS = (
    "kecamatan",
    "updated_at",
    "status",
    "level_index",
    "gauge_status",
    "report_status",
    "reports",
    "max_report_depth_cm",
    "stations",
)

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
    CREATE TABLE IF NOT EXISTS {GEOFENCE_EVENTS} (
        truck_id LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        site_id LowCardinality(String),
        site_kind LowCardinality(String),
        event LowCardinality(String) COMMENT 'enter or exit'
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(ts)
    ORDER BY (truck_id, ts, site_id, event)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {TRUCK_DAILY} (
        truck_id LowCardinality(String),
        day Date COMMENT 'local day (WIB)',
        km Float64,
        tpa_trips UInt32 COMMENT 'entries into the TPA geofence',
        fixes UInt32,
        updated_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(updated_at)
    ORDER BY (truck_id, day)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {CCTV_EVENTS} (
        camera_id LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        kind LowCardinality(String),
        confidence Float32,
        plate Nullable(String),
        people Nullable(UInt32),
        kecamatan LowCardinality(String),
        incident_id String COMMENT 'empty when the event opened no incident'
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(ts)
    ORDER BY (camera_id, kind, ts)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {CCTV_INCIDENTS} (
        incident_id String,
        camera_id LowCardinality(String),
        kind LowCardinality(String),
        kecamatan LowCardinality(String),
        started_at DateTime64(3, 'UTC'),
        last_seen DateTime64(3, 'UTC'),
        events UInt32,
        max_confidence Float32,
        state LowCardinality(String) COMMENT 'open or closed',
        version UInt64
    ) ENGINE = ReplacingMergeTree(version)
    ORDER BY incident_id
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {TRAFFIC_5M} (
        segment_id LowCardinality(String),
        window_start DateTime('UTC'),
        road LowCardinality(String),
        kecamatan LowCardinality(String),
        observations UInt32,
        volume UInt32 COMMENT 'vehicles counted in the window',
        mean_speed_kmh Nullable(Float32) COMMENT 'count-weighted',
        occupancy_pct Nullable(Float32),
        speed_ratio Nullable(Float32) COMMENT 'mean speed / free-flow speed',
        congestion LowCardinality(String) COMMENT 'free, moderate, heavy, jammed'
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (segment_id, window_start)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {GAUGE_READINGS} (
        station_id LowCardinality(String),
        kind LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        value Float32,
        river LowCardinality(String),
        kecamatan LowCardinality(String),
        source LowCardinality(String),
        ingested_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(ts)
    ORDER BY (station_id, kind, ts)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {FLOOD_REPORTS} (
        report_id String,
        ts DateTime64(3, 'UTC'),
        lat Float64,
        lon Float64,
        depth_cm Float32,
        kecamatan LowCardinality(String),
        note Nullable(String),
        source LowCardinality(String),
        ingested_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(ts)
    ORDER BY report_id
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {FLOOD_STATUS} (
        kecamatan LowCardinality(String),
        updated_at DateTime64(3, 'UTC'),
        status LowCardinality(String) COMMENT 'normal, waspada, siaga, awas',
        level_index UInt8,
        gauge_status LowCardinality(String),
        report_status LowCardinality(String),
        reports UInt32 COMMENT 'citizen reports in the report window',
        max_report_depth_cm Float32,
        stations Array(String) COMMENT 'gauges at waspada or worse'
    ) ENGINE = ReplacingMergeTree(updated_at)
    ORDER BY kecamatan
    """,
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
