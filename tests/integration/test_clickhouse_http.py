"""Analysts reach the embedded engine through the API with clickhouse-connect, as they
would a ClickHouse server: uvicorn on 127.0.0.1, the client over HTTP, tokens as passwords."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
from tests.clickhouse_go_reader import CLIENT_TCP_PROTOCOL_VERSION, GoReader
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


# The request clickhouse-go v2.47.0 makes over HTTP (the version grafana/clickhouse-datasource
# pins in go.mod), from its source: conn_http.go dialHttp puts Options.Settings, "database",
# default_format=Native and client_protocol_version=54460 (ClientTCPProtocolVersion,
# client_info.go) in the URL query, encoded by url.Values (keys sorted); createRequest POSTs the
# statement as the body, with credentials as the URL's user info without TLS (so Authorization:
# Basic) and User-Agent from ClientInfo; conn_http_query.go query() adds Accept-Encoding: gzip,
# the compression pkg/plugin/driver.go buildClickHouseOptions picks for HTTP, and reads the body
# raw unless Content-Encoding says gzip. Grafana's row limit arrives as the setting "limit";
# context.go queryOptions adds max_execution_time=<seconds to the deadline + 5> (Grafana's
# query timeout, 60 s by default; the dial timeout, 10 s, while connecting).
# dialHttp's queryHello runs the first statement below, decoded at 54460; every later block is
# decoded at the revision() it answered. ping() runs "SELECT 1" and wants one column named "1";
# Grafana's CheckMinServerVersion runs "SELECT version()".
GO_HELLO = "SELECT displayName(), version(), revision(), timezone()"
GO_USER_AGENT = "grafana/12.3.0 clickhouse-datasource/4.12.0 clickhouse-go/2.47.0 (lv:go/1.25.1; os:linux)"  # fmt: skip


def plain(value: Any) -> Any:
    """Values as comparable across readers: instants in UTC, containers as lists."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


async def test_grafana_clickhouse_go_reads_native_written_for_its_revision(
    clean_warehouse: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    wh = clean_warehouse
    await seed(wh)
    settings = settings.model_copy(update={"api_tokens_file": tokens(tmp_path)})
    sql = (
        "SELECT segment_id, window_start, kecamatan, volume, mean_speed_kmh, congestion,"
        " toDecimal64(speed_ratio, 3) AS ratio, [volume, observations] AS pair,"
        " map(segment_id, volume) AS m, tuple(road, version) AS tp,"
        " if(volume % 2 = 0, NULL, volume) AS odd, toDateTime64(window_start, 3, 'Asia/Jakarta')"
        f" AS local FROM {TRAFFIC_5M} FINAL ORDER BY segment_id"
    )
    async with serving(settings, wh) as port:
        base = f"http://127.0.0.1:{port}/clickhouse"
        credentials = base64.b64encode(f"rina:{ANALYST}".encode()).decode()
        go_headers = {
            "Authorization": f"Basic {credentials}",
            "User-Agent": GO_USER_AGENT,
            "Accept-Encoding": "gzip",
        }

        def go_url(**extra: str) -> str:
            query = {
                "client_protocol_version": str(CLIENT_TCP_PROTOCOL_VERSION),
                "database": "default",
                "default_format": "Native",
                **extra,
            }
            return f"{base}?{urlencode(sorted(query.items()))}"

        async with httpx.AsyncClient(timeout=30) as http:

            async def go(statement: str, revision: int, **extra: str) -> Any:
                r = await http.post(go_url(**extra), content=statement.encode(), headers=go_headers)
                assert r.status_code == 200, r.text
                assert "content-encoding" not in r.headers  # read as it is, as from a server
                assert r.headers["X-ClickHouse-Format"] == "Native"
                reader = GoReader(r.content, server_tz=server_tz)
                names, types, rows = reader.read_all(revision)
                assert reader.pos == len(r.content)
                return names, types, rows, reader

            server_tz = "UTC"
            dialing = {"max_execution_time": "15"}
            _, types, hello, _ = await go(GO_HELLO, CLIENT_TCP_PROTOCOL_VERSION, **dialing)
            assert types == ["String", "String", "UInt32", "String"]
            _name, version, revision, server_tz = hello[0]
            assert re.match(r"\d+\.\d+\.\d+", version) and revision >= 54454, hello
            assert (await go("SELECT 1", revision, **dialing))[0] == ["1"]  # clickhouse-go's ping
            assert (await go("SELECT version()", revision))[2] == [(version,)]
            names, types, rows, _ = await go(sql, revision, limit="1000", max_execution_time="65")
            assert len(rows) == 30
            assert types[0] == "LowCardinality(String)"
            assert types[-1] == "DateTime64(3, 'Asia/Jakarta')"
            ch = await call(
                lambda: clickhouse_connect.get_client(
                    host="127.0.0.1",
                    port=port,
                    interface="http",
                    proxy_path="/clickhouse",
                    username="rina",
                    password=ANALYST,
                )
            )
            # clickhouse-connect's probe now finds a server's framing, so it too asks for
            # revision 54405 (LowCardinality) from here on, as it does of a server.
            assert ch.protocol_version == 54405
            expected = await call(lambda: ch.query(sql))
            assert names == list(expected.column_names)
            assert [plain(r) for r in rows] == [plain(r) for r in expected.result_rows]
            assert rows[1][:4] == ("SEG-1", rows[1][1], "Semarang Tengah", 101)
            # Grafana's row limit cuts the result; its other settings pass the policy as before.
            assert len((await go(sql, revision, limit="3"))[2]) == 3
            numbers = "SELECT number AS n, toString(number) AS s FROM numbers(20)"
            *_, rows, reader = await go(numbers, revision, max_block_size="7")
            assert len(reader.blocks) == 3 and rows == [(i, str(i)) for i in range(20)]

            # Without client_protocol_version (curl, or any client of revision 0): chdb's own
            # bytes, which read at revision 0 to the same rows.
            plain_native = await http.post(
                f"{base}/?default_format=Native&password={ANALYST}", content=sql
            )
            assert plain_native.status_code == 200
            assert [plain(r) for r in GoReader(plain_native.content).read_all(0)[2]] == [
                plain(r) for r in expected.result_rows
            ]

            refused = await http.post(
                go_url(), content=f"SELECT * FROM {CCTV_EVENTS}", headers=go_headers
            )
            # Grafana takes "DB::Exception" in the body as the database's error.
            assert refused.status_code == 403 and "DB::Exception" in refused.text
            assert refused.headers["X-ClickHouse-Exception-Code"] == "497"
            dynamic = await http.post(
                go_url(), content="SELECT CAST(1 AS Dynamic) AS d", headers=go_headers
            )
            assert dynamic.status_code == 501 and "Dynamic" in dynamic.text
            lz4 = await http.post(go_url(compress="1"), content="SELECT 1", headers=go_headers)
            assert lz4.status_code == 501 and "compress=1" in lz4.text
            for revision_text in ("x", "²"):
                bad = await http.post(
                    go_url(client_protocol_version=revision_text),
                    content="SELECT 1",
                    headers=go_headers,
                )
                assert bad.status_code == 400 and "client_protocol_version" in bad.text
            binary = await http.post(
                go_url(output_format_native_encode_types_in_binary_format="1"),
                content="SELECT 1",
                headers=go_headers,
            )
            assert binary.status_code == 501
