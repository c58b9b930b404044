"""Analysts reach the embedded engine through the API with clickhouse-connect, as they
would a ClickHouse server: uvicorn on 127.0.0.1, the client over HTTP, tokens as passwords."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest
import uvicorn
from clickhouse_connect.driver.exceptions import DatabaseError

from api.app import create_api
from api.commands import KafkaEventPublisher
from schemas.clickhouse_ddl import (
    CCTV_EVENTS,
    CITIZEN_REPORTS,
    FLOOD_REPORTS,
    REPORT_CONTACTS,
    REPORT_EVENTS,
    TRAFFIC_5M,
)
from schemas.settings import Settings
from schemas.sql_policy import PERSONAL_TABLES
from schemas.warehouse import Warehouse
from sitroom.runtime import bound_port
from tests.integration.conftest import write_tokens

pytestmark = pytest.mark.integration

ANALYST, STAFF = "analyst-secret", "staff-secret"


def tokens(tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "tokens.toml", {ANALYST: ("rina.bappeda", ["analyst"], None),
                                                   STAFF: ("budi", ["staff"], None)})  # fmt: skip


@asynccontextmanager
async def serving(settings: Settings, warehouse: Warehouse) -> AsyncIterator[int]:
    async def probe() -> bool:
        return True

    commands = KafkaEventPublisher("127.0.0.1:1")  # never used: nothing is published here
    app = create_api(settings, warehouse, probe, commands)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield bound_port(server)
    finally:
        server.should_exit = True
        await task


async def seed(wh: Warehouse) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = [
        [
            f"SEG-{i}",
            now,
            "Jl. Pemuda",
            "Semarang Tengah",
            5,
            100 + i,
            30.0,
            12.0,
            0.6,
            "moderate",
            5,
        ]
        for i in range(30)
    ]
    cols = (
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
    await wh.insert(TRAFFIC_5M, rows, cols)
    await wh.insert(
        CCTV_EVENTS,
        [["CAM-1", now, "plate_read", 0.9, "H 1234 AB", None, "Semarang Tengah", ""]],
        ("camera_id", "ts", "kind", "confidence", "plate", "people", "kecamatan", "incident_id"),
    )


async def call(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


async def test_clickhouse_connect_reads_the_embedded_engine_through_the_api(
    clean_warehouse: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    wh = clean_warehouse
    await seed(wh)
    settings = settings.model_copy(update={"api_tokens_file": tokens(tmp_path), "sql_max_rows": 20})
    async with serving(settings, wh) as port:

        def client(password: str | None = ANALYST, **kw: Any) -> Any:
            creds = {"username": "rina", "password": password} if password else {}
            return clickhouse_connect.get_client(
                host="127.0.0.1",
                port=port,
                interface="http",
                proxy_path="/clickhouse",
                **creds,
                **kw,
            )

        ch = await call(client)
        assert ch.server_version and ch.server_tz is not None
        result = await call(
            lambda: ch.query(
                f"SELECT segment_id, volume FROM {TRAFFIC_5M} FINAL WHERE volume >= {{v:UInt32}}"
                " ORDER BY segment_id LIMIT 3",
                parameters={"v": 110},
            )
        )
        assert result.result_rows == [("SEG-10", 110), ("SEG-11", 111), ("SEG-12", 112)]
        assert await call(lambda: ch.command("SELECT count() FROM transit_corridor_1m")) == 0
        tables = await call(lambda: ch.query("SHOW TABLES").result_rows)
        assert (TRAFFIC_5M,) in tables
        described = await call(lambda: ch.query(f"DESCRIBE TABLE {TRAFFIC_5M}").result_rows)
        assert described[0][:2] == ("segment_id", "LowCardinality(String)")
        # The token as a bearer access token works the same.
        bearer = await call(lambda: client(password=None, access_token=ANALYST))
        assert await call(lambda: bearer.command("SELECT 1 + 1")) == 2

        def refused(sql: str, c: Any = ch) -> str:
            with pytest.raises(DatabaseError) as caught:
                c.query(sql)
            return str(caught.value)

        for table in sorted(PERSONAL_TABLES):
            assert "personal data" in await call(lambda t=table: refused(f"SELECT * FROM {t}"))
        assert {
            CITIZEN_REPORTS,
            REPORT_EVENTS,
            REPORT_CONTACTS,
            FLOOD_REPORTS,
            CCTV_EVENTS,
        } <= PERSONAL_TABLES
        # Hidden inside a join, a subquery, an IN, a table function or another spelling.
        for sql in (
            f"SELECT * FROM {TRAFFIC_5M} AS t JOIN default.cctv_events AS c ON 1",
            f"SELECT count() FROM (SELECT plate FROM `{CCTV_EVENTS}`)",
            f"SELECT 1 WHERE 'x' IN {CITIZEN_REPORTS}",
            "SELECT count() FROM merge(currentDatabase(), '^cctv')",
            "SELECT count() FROM file('/etc/hostname', 'LineAsString')",
            "SELECT file('/etc/hostname')",
        ):
            message = await call(lambda s=sql: refused(s))
            assert "not open to analysts" in message, (sql, message)
        for sql in (
            f"INSERT INTO {TRAFFIC_5M} (segment_id) VALUES ('x')",
            f"DROP TABLE {TRAFFIC_5M}",
            f"ALTER TABLE {TRAFFIC_5M} DELETE WHERE 1",
            "SELECT 1; DROP TABLE traffic_segment_5m",
            "SELECT 1 INTO OUTFILE 'leak.tsv'",
            f"SELECT count() FROM {TRAFFIC_5M} SETTINGS max_result_rows = 1000000",
        ):
            message = await call(lambda s=sql: refused(s))
            assert any(
                w in message for w in ("read-only", "readonly", "Multi-statements", "OUTFILE")
            ), (sql, message)
        assert await wh.scalar(f"SELECT count() FROM {TRAFFIC_5M}") == 30  # nothing changed
        # More rows than SITROOM_SQL_MAX_ROWS (20): ClickHouse's own limit error, no rows.
        assert "Limit for result exceeded" in await call(
            lambda: refused(f"SELECT * FROM {TRAFFIC_5M}")
        )
        assert (
            len(await call(lambda: ch.query(f"SELECT * FROM {TRAFFIC_5M} LIMIT 20").result_rows))
            == 20
        )
        # Without the analyst role, or without a token: refused before anything runs.
        for secret in (STAFF, "wrong"):
            with pytest.raises(DatabaseError) as caught:
                await call(lambda s=secret: client(password=s))
            assert "analyst" in str(caught.value)

    async with serving(settings, wh) as port:
        base = f"http://127.0.0.1:{port}/clickhouse"
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(f"{base}/ping")).text == "Ok.\n"
            anonymous = await http.post(base, content="SELECT 1")
            assert anonymous.status_code == 401
            assert anonymous.headers["X-ClickHouse-Exception-Code"] == "516"
            # curl-style: query in the URL, credentials as X-ClickHouse-User/Key, JSON out.
            r = await http.get(
                base,
                params={
                    "query": f"SELECT count() AS n FROM {TRAFFIC_5M}",
                    "default_format": "JSON",
                },
                headers={"X-ClickHouse-User": "rina", "X-ClickHouse-Key": ANALYST},
            )
            assert r.status_code == 200 and r.json()["data"] == [{"n": 30}]
            assert r.headers["X-ClickHouse-Format"] == "JSON"
            assert r.headers["X-ClickHouse-Server-Display-Name"] == "sitroom"
            assert (
                r.headers["X-ClickHouse-Timezone"]
                and "read_rows" in r.headers["X-ClickHouse-Summary"]
            )
            tsv = await http.post(
                f"{base}/?database=default&password={ANALYST}",
                content=f"SELECT segment_id FROM {TRAFFIC_5M} ORDER BY segment_id LIMIT 2 FORMAT CSV",
            )
            assert tsv.text == '"SEG-0"\n"SEG-1"\n' and tsv.headers["X-ClickHouse-Format"] == "CSV"
            # A client may tighten the limits (Grafana sends max_execution_time), never lift them.
            for rows, status in (("5", 500), ("1000", 200)):
                r = await http.post(
                    f"{base}/?max_result_rows={rows}&max_execution_time=60&password={ANALYST}",
                    content=f"SELECT * FROM {TRAFFIC_5M} LIMIT 20",
                )
                assert r.status_code == status, r.text
            sneaky = await http.post(f"{base}/?allow_ddl=1&password={ANALYST}", content="SELECT 1")
            assert sneaky.status_code == 403 and "allow_ddl" in sneaky.text
            other = await http.post(
                f"{base}/?database=system&password={ANALYST}",
                content="SELECT count() FROM query_log",
            )
            assert other.status_code == 403
