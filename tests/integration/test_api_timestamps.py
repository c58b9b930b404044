"""Every time the API returns says its offset (RFC 3339), whatever ClickHouse hands back."""

from datetime import UTC, datetime

from schemas import clickhouse_ddl as ddl
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from tests.integration.conftest import api_client


async def test_warehouse_times_are_aware(clean_warehouse: Warehouse) -> None:
    (row,) = await clean_warehouse.query(
        "SELECT toDateTime64('2026-01-01 07:00:00', 3, 'UTC') AS a, "
        "toDateTime('2026-01-01 07:00:00', 'UTC') AS b, now() AS c, toDate('2026-01-01') AS d"
    )
    assert row["a"] == datetime(2026, 1, 1, 7, tzinfo=UTC)
    assert row["b"].tzinfo is not None and row["c"].tzinfo is not None
    assert not isinstance(row["d"], datetime)  # a date stays a date


async def test_api_times_carry_an_offset(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    ts = datetime(2026, 1, 1, 7, 30, tzinfo=UTC)
    row = ("tz-bus", ts, None, "K1", "K1", None, -6.99, 110.42, None, None, 30.0, "", "test",
           0, ts, "Semarang Tengah")  # fmt: skip
    await clean_warehouse.insert(ddl.POSITIONS, [row], ddl.POSITION_COLUMNS)
    async with api_client(settings, clean_warehouse, broker.bootstrap) as api:
        latest = (await api.get("/v1/transit/vehicles/tz-bus")).json()["latest"]
    for key in ("ts", "ingested_at"):
        if key in latest:
            parsed = datetime.fromisoformat(latest[key])
            assert parsed.tzinfo is not None, f"{key}={latest[key]} has no offset"
            assert parsed == ts
