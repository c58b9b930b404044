"""ClickHouse tables of the departments' domains: market prices, e-procurement and
citizens' reports (re-exported by ``schemas.clickhouse_ddl``, which creates them)."""

from __future__ import annotations

PRICE_OBSERVATIONS = "prices_observations"
PRICES_DAILY = "prices_daily"
PRICES_CITY = "prices_city_daily"
PRICE_OBSERVATION_COLUMNS = (
    "market_id", "commodity_id", "day", "observed_at", "price_idr", "grade", "unit", "source",
)  # fmt: skip
PRICE_DAILY_COLUMNS = (
    "market_id", "commodity_id", "day", "city", "kecamatan", "grade", "unit", "price_idr",
    "observed_at", "source", "prev_price_idr", "change_dod_pct", "median_7d_idr",
    "change_7d_pct", "updated_at", "version",
)  # fmt: skip
PRICE_CITY_COLUMNS = (
    "city", "commodity_id", "day", "median_idr", "min_idr", "max_idr", "markets",
    "prev_median_idr", "change_dod_pct", "median_7d_idr", "change_7d_pct", "updated_at",
    "version",
)  # fmt: skip
PROCUREMENT_TENDERS = "procurement_tenders"
PROCUREMENT_EVENTS = "procurement_events"
PROCUREMENT_FLAGS = "procurement_flags"
TENDER_COLUMNS = (
    "tender_key", "source", "tender_id", "agency_id", "agency_name", "title", "method",
    "category", "year", "status", "stage", "estimate_amount", "estimate_currency",
    "tender_start", "tender_end", "tender_days", "bidders", "winner_id", "winner_name",
    "award_amount", "award_currency", "award_in_estimate_currency", "award_ratio",
    "contract_amount", "contract_currency", "flags", "first_event_at", "last_event_at",
    "version",
)  # fmt: skip
TENDER_EVENT_COLUMNS = (
    "event_id", "tender_key", "kind", "ts", "source", "agency_id", "party_id", "party_name",
    "amount", "currency", "connector",
)  # fmt: skip
FLAG_COLUMNS = (
    "flag", "entity", "tender_key", "agency_id", "agency_name", "method", "winner_id",
    "winner_name", "ts", "value", "threshold", "detail",
)  # fmt: skip
# Citizen reports. `reports` and `report_events` are the analysts' tables and hold no
# personal data; the reporter's contact goes to `report_contacts` only (in production
# analysts' ClickHouse users get no grant on it).
CITIZEN_REPORTS = "reports"
REPORT_EVENTS = "report_events"
REPORT_CONTACTS = "report_contacts"
# The reports' lifecycle without their personal columns (words, point, photos, actors,
# notes): what analysts' SQL and dashboards read instead of `reports`.
REPORT_DEADLINES = "report_deadlines"
CITIZEN_REPORT_COLUMNS = (
    "report_id", "version", "status", "category", "department", "kecamatan", "text", "lat",
    "lon", "photo_urls", "channel", "received_at", "updated_at", "due_at", "closed_at",
    "last_actor", "last_note",
)  # fmt: skip
REPORT_EVENT_COLUMNS = (
    "report_id", "seq", "ts", "kind", "department", "category", "kecamatan", "actor", "note",
    "source",
)  # fmt: skip
REPORT_CONTACT_COLUMNS = ("report_id", "ts", "name", "phone", "email", "channel", "ingested_at")

DEPARTMENT_DDL: tuple[str, ...] = (
    f"""
    CREATE TABLE IF NOT EXISTS {PRICE_OBSERVATIONS} (
        market_id LowCardinality(String),
        commodity_id LowCardinality(String),
        day Date COMMENT 'market day (WIB)',
        observed_at DateTime64(3, 'UTC'),
        price_idr Float64,
        grade LowCardinality(String),
        unit LowCardinality(String),
        source LowCardinality(String)
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(day)
    ORDER BY (commodity_id, market_id, day, observed_at)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {PRICES_DAILY} (
        market_id LowCardinality(String),
        commodity_id LowCardinality(String),
        day Date COMMENT 'market day (WIB)',
        city LowCardinality(String),
        kecamatan LowCardinality(String) COMMENT 'empty outside Kota Semarang',
        grade LowCardinality(String),
        unit LowCardinality(String),
        price_idr Float64 COMMENT 'the last observation of the day',
        observed_at DateTime64(3, 'UTC'),
        source LowCardinality(String),
        prev_price_idr Nullable(Float64) COMMENT 'the market''s previous market day',
        change_dod_pct Nullable(Float64),
        median_7d_idr Nullable(Float64) COMMENT 'median of the market''s previous 7 days',
        change_7d_pct Nullable(Float64),
        updated_at DateTime64(3, 'UTC') COMMENT 'when the worker computed the row (wall clock)',
        version UInt64 COMMENT 'sum of the input prices'' observation times (ms): grows with every correction'
    ) ENGINE = ReplacingMergeTree(version)
    ORDER BY (commodity_id, market_id, day)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {PRICES_CITY} (
        city LowCardinality(String),
        commodity_id LowCardinality(String),
        day Date COMMENT 'market day (WIB)',
        median_idr Float64 COMMENT 'median of the markets'' daily prices',
        min_idr Float64,
        max_idr Float64,
        markets UInt16,
        prev_median_idr Nullable(Float64),
        change_dod_pct Nullable(Float64),
        median_7d_idr Nullable(Float64) COMMENT 'median of the previous 7 days'' city medians',
        change_7d_pct Nullable(Float64),
        updated_at DateTime64(3, 'UTC') COMMENT 'when the worker computed the row (wall clock)',
        version UInt64 COMMENT 'sum of the input prices'' observation times (ms): grows with every correction'
    ) ENGINE = ReplacingMergeTree(version)
    ORDER BY (city, commodity_id, day)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {PROCUREMENT_TENDERS} (
        tender_key String COMMENT 'source:tender_id',
        source LowCardinality(String),
        tender_id String,
        agency_id String,
        agency_name String,
        title Nullable(String),
        method LowCardinality(String),
        category LowCardinality(String),
        year Nullable(UInt16),
        status LowCardinality(String),
        stage LowCardinality(String) COMMENT 'announced, bid, awarded, contract',
        estimate_amount Nullable(Float64) COMMENT 'owner estimate (HPS/pagu)',
        estimate_currency LowCardinality(String),
        tender_start Nullable(DateTime64(3, 'UTC')),
        tender_end Nullable(DateTime64(3, 'UTC')),
        tender_days Nullable(Float32),
        bidders Nullable(UInt32) COMMENT 'max of reported and distinct bidders seen',
        winner_id Nullable(String),
        winner_name Nullable(String),
        award_amount Nullable(Float64),
        award_currency LowCardinality(String),
        award_in_estimate_currency Nullable(Float64) COMMENT 'null when no rate converts it',
        award_ratio Nullable(Float32) COMMENT 'award / estimate, same currency',
        contract_amount Nullable(Float64),
        contract_currency LowCardinality(String),
        flags Array(String),
        first_event_at DateTime64(3, 'UTC'),
        last_event_at DateTime64(3, 'UTC'),
        version UInt64
    ) ENGINE = ReplacingMergeTree(version)
    ORDER BY tender_key
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {PROCUREMENT_EVENTS} (
        event_id String,
        tender_key String,
        kind LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        source LowCardinality(String),
        agency_id String,
        party_id Nullable(String) COMMENT 'bidder or winner',
        party_name Nullable(String),
        amount Nullable(Float64),
        currency LowCardinality(String),
        connector LowCardinality(String)
    ) ENGINE = ReplacingMergeTree
    ORDER BY (tender_key, event_id)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {PROCUREMENT_FLAGS} (
        flag LowCardinality(String),
        entity String COMMENT 'the alarm entity: tender key, or agency/winner',
        tender_key String,
        agency_id String,
        agency_name String,
        method LowCardinality(String),
        winner_id Nullable(String),
        winner_name Nullable(String),
        ts DateTime64(3, 'UTC'),
        value Float64 COMMENT 'ratio, days, bidders or wins',
        threshold Float64,
        detail String
    ) ENGINE = ReplacingMergeTree
    ORDER BY (flag, tender_key)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {CITIZEN_REPORTS} (
        report_id String,
        version UInt32 COMMENT 'events applied to the report so far',
        status LowCardinality(String) COMMENT 'received, assigned, in_progress, resolved, rejected',
        category LowCardinality(String),
        department LowCardinality(String) COMMENT 'the OPD responsible now',
        kecamatan LowCardinality(String),
        text String,
        lat Float64,
        lon Float64,
        photo_urls Array(String),
        channel LowCardinality(String),
        received_at DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC'),
        due_at DateTime64(3, 'UTC') COMMENT 'received_at + the category SLA',
        closed_at Nullable(DateTime64(3, 'UTC')),
        last_actor Nullable(String),
        last_note Nullable(String)
    ) ENGINE = ReplacingMergeTree(version)
    ORDER BY report_id
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {REPORT_EVENTS} (
        report_id String,
        seq UInt32 COMMENT 'the report version this event made',
        ts DateTime64(3, 'UTC'),
        kind LowCardinality(String),
        department LowCardinality(String) COMMENT 'responsible after the event',
        category LowCardinality(String),
        kecamatan LowCardinality(String),
        actor Nullable(String),
        note Nullable(String),
        source LowCardinality(String)
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(ts)
    ORDER BY (report_id, seq)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {REPORT_CONTACTS} (
        report_id String,
        ts DateTime64(3, 'UTC'),
        name Nullable(String),
        phone Nullable(String),
        email Nullable(String),
        channel LowCardinality(String),
        ingested_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(ingested_at)
    ORDER BY report_id
    TTL toDateTime(ts) + INTERVAL 1 YEAR
    """,
    f"""
    CREATE OR REPLACE VIEW {REPORT_DEADLINES} AS
    SELECT report_id, status, category, department, kecamatan, channel, received_at,
           updated_at, due_at, closed_at
    FROM {CITIZEN_REPORTS} FINAL
    """,
)
