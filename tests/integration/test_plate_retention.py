"""Licence plates are kept for SITROOM_PLATE_RETENTION_DAYS after the read, then emptied;
the camera event stays."""

from datetime import UTC, datetime, timedelta

from schemas import clickhouse_ddl as ddl
from schemas.ddl_sensors import CAMERA_EVENT_COLUMNS
from schemas.warehouse import Warehouse


async def test_plates_expire_and_events_stay(clean_warehouse: Warehouse) -> None:
    wh = clean_warehouse
    await wh.ensure_schema(plate_retention_days=30)
    await wh.ensure_schema(plate_retention_days=30)  # a second start changes nothing
    now = datetime.now(UTC)
    old, fresh = now - timedelta(days=40), now - timedelta(days=2)
    rows = [("cam-1", old, "plate_read", 0.9, "H 1111 AA", None, "Semarang Tengah", ""),
            ("cam-1", fresh, "plate_read", 0.9, "H 2222 BB", None, "Semarang Tengah", "")]  # fmt: skip
    await wh.insert(ddl.CCTV_EVENTS, rows, CAMERA_EVENT_COLUMNS)
    await wh._run("command", f"OPTIMIZE TABLE {ddl.CCTV_EVENTS} FINAL")  # a merge applies TTLs
    kept = await wh.query(f"SELECT ts, plate FROM {ddl.CCTV_EVENTS} ORDER BY ts")
    assert [r["plate"] for r in kept] == [None, "H 2222 BB"]
