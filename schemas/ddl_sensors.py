"""ClickHouse tables of the sensor and fleet domains: flood gauges, traffic, cameras and
garbage trucks (re-exported by ``schemas.clickhouse_ddl``, which creates them)."""

from __future__ import annotations

GAUGE_READINGS = "flood_gauge_readings"
FLOOD_REPORTS = "flood_reports"
FLOOD_STATUS = "flood_kecamatan_status"

GEOFENCE_EVENTS = "waste_geofence_events"
TRUCK_DAILY = "waste_truck_daily"
GEOFENCE_COLUMNS = ("truck_id", "ts", "site_id", "site_kind", "event")
DAILY_COLUMNS = ("truck_id", "day", "km", "tpa_trips", "fixes", "updated_at", "version")
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
    "version",
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
    "photo_url",
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

SENSOR_DDL: tuple[str, ...] = (
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
        updated_at DateTime64(3, 'UTC') COMMENT 'newest fix counted in the day (event time)',
        version UInt32 COMMENT 'distinct fixes in the day: a late fix re-emits the row with a higher one'
    ) ENGINE = ReplacingMergeTree(version)
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
        congestion LowCardinality(String) COMMENT 'free, moderate, heavy, jammed',
        version UInt32 COMMENT 'readings in the window: a late reading re-emits the row with a higher one'
    ) ENGINE = ReplacingMergeTree(version)
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
        depth_cm Nullable(Float32) COMMENT 'NULL when the citizen gave no depth',
        kecamatan LowCardinality(String),
        note Nullable(String),
        source LowCardinality(String),
        ingested_at DateTime64(3, 'UTC'),
        photo_url Nullable(String)
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
        max_report_depth_cm Float32 COMMENT 'deepest report that gave a depth; 0 when none did',
        stations Array(String) COMMENT 'gauges at waspada or worse'
    ) ENGINE = ReplacingMergeTree(updated_at)
    ORDER BY kecamatan
    """,
)
