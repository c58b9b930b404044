"""ensure_schema on the embedded engine: raw-table TTLs and the dead letters' new key."""

from __future__ import annotations

import pytest

from schemas import clickhouse_ddl as ddl
from schemas.warehouse import Warehouse

pytestmark = pytest.mark.integration

OLD_DEAD_LETTERS = f"""
CREATE TABLE {ddl.DEAD_LETTERS} (
    partition UInt32, offset Int64, received_at DateTime64(3, 'UTC'),
    reason LowCardinality(String), detail String, source_topic LowCardinality(String),
    source_partition Nullable(Int32), source_offset Nullable(Int64), item_index Nullable(Int32),
    connector LowCardinality(String), location String, raw String, raw_bytes UInt32
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (partition, offset)
TTL toDateTime(received_at) + INTERVAL 90 DAY
"""


async def _table(wh: Warehouse, name: str, column: str) -> str:
    return str(
        await wh.scalar(
            f"SELECT {column} FROM system.tables WHERE database = currentDatabase()"
            " AND name = {t:String}",
            {"t": name},
        )
    )


async def _mutations(wh: Warehouse) -> int:
    return int(
        await wh.scalar("SELECT count() FROM system.mutations WHERE database = currentDatabase()")
    )


async def test_raw_tables_get_their_ttl_once_and_a_change_applies(warehouse: Warehouse) -> None:
    await warehouse.ensure_schema(raw_ttl_days=400)
    for table, column in ddl.RAW_TTL_COLUMNS.items():
        assert f"TTL toDateTime({column}) + toIntervalDay(400) " in await _table(
            warehouse, table, "engine_full"
        )
    mutations = await _mutations(warehouse)
    await warehouse.ensure_schema(raw_ttl_days=400)  # idempotent: no ALTER, no mutation
    assert await _mutations(warehouse) == mutations
    await warehouse.ensure_schema(raw_ttl_days=40)  # not mistaken for 400
    assert "toIntervalDay(40) " in await _table(warehouse, ddl.POSITIONS, "engine_full")
    # Rows older than the TTL go; the rest stay.
    await warehouse._run(
        "command",
        f"INSERT INTO {ddl.GAUGE_READINGS} (station_id, kind, ts, value, river, kecamatan, source,"
        " ingested_at) VALUES ('s1', 'level', now64(3), 1, '', '', '', now64(3) - INTERVAL 100 DAY),"
        " ('s1', 'level', '2017-09-13 14:52:55', 2, '', '', '', now64(3))",
    )
    await warehouse._run("command", f"OPTIMIZE TABLE {ddl.GAUGE_READINGS} FINAL")
    # Stored 100 days ago: gone. An old event (a replay) stored now: kept.
    assert await warehouse.query(f"SELECT value FROM {ddl.GAUGE_READINGS}") == [{"value": 2.0}]
    # Tables without an ingestion time fill stored_at on insert, so their TTL works too.
    await warehouse._run(
        "command",
        f"INSERT INTO {ddl.CCTV_EVENTS} (camera_id, ts, kind, confidence, kecamatan, incident_id)"
        " VALUES ('c1', '2017-09-13 14:52:55', 'crowd', 0.9, '', '')",
    )
    await warehouse._run("command", f"OPTIMIZE TABLE {ddl.CCTV_EVENTS} FINAL")
    assert (
        await warehouse.scalar(
            f"SELECT count() FROM {ddl.CCTV_EVENTS} WHERE stored_at > now() - INTERVAL 1 HOUR"
        )
        == 1
    )
    await warehouse._run("command", f"TRUNCATE TABLE {ddl.CCTV_EVENTS}")
    await warehouse.ensure_schema(raw_ttl_days=400)
    await warehouse._run("command", f"TRUNCATE TABLE {ddl.GAUGE_READINGS}")


async def test_old_dead_letters_gain_the_cluster_id_in_their_key(warehouse: Warehouse) -> None:
    await warehouse._run("command", f"DROP TABLE IF EXISTS {ddl.DEAD_LETTERS}")
    await warehouse._run("command", OLD_DEAD_LETTERS)
    await warehouse._run(
        "command",
        f"INSERT INTO {ddl.DEAD_LETTERS} (partition, offset, received_at, reason, raw)"
        " VALUES (0, 0, now64(3), 'schema_violation', 'old')",
    )
    for _ in range(2):  # the migration runs on every start
        await warehouse.ensure_schema()
        key = await _table(warehouse, ddl.DEAD_LETTERS, "sorting_key")
        assert key == "partition, offset, cluster_id"
    columns = ", ".join(ddl.DEAD_LETTER_COLUMNS)
    await warehouse._run(
        "command",
        f"INSERT INTO {ddl.DEAD_LETTERS} ({columns}) VALUES (0, 0, now64(3), 'late', '', '',"
        " NULL, NULL, NULL, '', '', 'new', 3, 'cluster-b')",
    )
    rows = await warehouse.query(
        f"SELECT raw, cluster_id FROM {ddl.DEAD_LETTERS} FINAL ORDER BY cluster_id"
    )
    assert rows == [{"raw": "old", "cluster_id": ""}, {"raw": "new", "cluster_id": "cluster-b"}]
    # A new table is created with the key directly.
    await warehouse._run("command", f"DROP TABLE {ddl.DEAD_LETTERS}")
    await warehouse.ensure_schema()
    key = await _table(warehouse, ddl.DEAD_LETTERS, "sorting_key")
    assert key == "partition, offset, cluster_id"
