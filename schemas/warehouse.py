"""The ClickHouse gateway every process uses: one DSN, async methods, typed errors.

clickhouse-connect's clients are synchronous (the chdb backend has no async client), so
calls run on a thread pool and never block the event loop. chdb allows one session per
process, so that pool has one thread; an HTTP server gets a few.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import chdb
import clickhouse_connect
from clickhouse_connect import common as clickhouse_common
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from schemas.clickhouse_ddl import (
    CCTV_EVENTS,
    DDL,
    MIGRATIONS,
    RAW_BYTES_TABLES,
    RAW_TTL_COLUMNS,
    VERSIONED_REBUILDS,
)
from schemas.insert_encoding import FORMAT as INSERT_FORMAT
from schemas.insert_encoding import SETTINGS as INSERT_SETTINGS
from schemas.insert_encoding import int_bounds, json_rows
from schemas.sql_engine import SqlAnswer, SqlRequest, run_sql
from schemas.sql_policy import Limits

log = logging.getLogger(__name__)


def redact(dsn: str) -> str:
    """The DSN without its password, for logs and error messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _aware(value: Any) -> Any:
    """Every time we store is UTC; clickhouse-connect hands some back without a zone (a
    computed column, a DateTime without one), and an answer must say its offset."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class WarehouseError(RuntimeError):
    """A query or insert that ClickHouse rejected; retrying will not help."""


class WarehouseUnavailable(WarehouseError):
    """ClickHouse could not be reached; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InsertRejected(WarehouseError):
    """ClickHouse refused the rows of one table (bad values, bad schema)."""

    def __init__(self, table: str, rows: int, message: str) -> None:
        super().__init__(f"ClickHouse rejected {rows} rows for {table}: {message}")
        self.table = table
        self.rows = rows


class InsertBlock(NamedTuple):
    table: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


class Warehouse:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.embedded = dsn.startswith("chdb:")
        self._executor = ThreadPoolExecutor(
            max_workers=1 if self.embedded else 4, thread_name_prefix="clickhouse"
        )
        self._client: Any = None
        self._bounds: dict[tuple[str, tuple[str, ...]], list[tuple[int, int, int]]] = {}
        # Every time we store is UTC: a naive datetime means UTC on both insert paths (the
        # JSON one reads it in the column's zone), never the host's local time.
        clickhouse_common.set_setting("naive_datetime_insert", "server")

    def _connect(self) -> Any:
        if self._client is None:
            kwargs: dict[str, Any] = {"dsn": self.dsn}
            if not self.embedded:
                # A shared session would reject concurrent queries from the pool.
                kwargs["autogenerate_session_id"] = False
            try:
                self._client = clickhouse_connect.get_client(**kwargs)
            except OperationalError as exc:
                raise WarehouseUnavailable(
                    f"cannot reach ClickHouse at {redact(self.dsn)}: {exc}"
                ) from exc
            log.info("clickhouse connected", extra={"dsn": redact(self.dsn)})
        return self._client

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            client = self._connect()
            try:
                return getattr(client, fn)(*args, **kwargs)
            except OperationalError as exc:
                raise WarehouseUnavailable(str(exc)) from exc
            except ClickHouseError as exc:
                raise WarehouseError(str(exc)) from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def ensure_schema(
        self, raw_ttl_days: int | None = None, plate_retention_days: int | None = None
    ) -> None:
        """Create and migrate every table; with ``raw_ttl_days``, also give the raw event
        tables (RAW_TTL_COLUMNS) that TTL; with ``plate_retention_days``, empty licence
        plates that long after they were read."""
        if self.embedded:
            # clickhouse-connect's chdb transport imports pandas at the first insert (~45 MB,
            # a second or so): pay it at start, not inside the first batch.
            importlib.import_module("pandas")
        old = [t for t in VERSIONED_REBUILDS if await self._needs_version(t)]
        for table in old:
            await self._run("command", f"RENAME TABLE {table} TO {table}_unversioned")
        for statement in (*DDL, *MIGRATIONS):
            await self._run("command", statement)
        for table in old:
            await self._copy_unversioned(table)
        if raw_ttl_days is not None:
            await self._raw_ttls(raw_ttl_days)
        if plate_retention_days is not None:
            await self._plate_ttl(plate_retention_days)

    async def _plate_ttl(self, days: int) -> None:
        """A column TTL: ClickHouse resets the plate to NULL once the read is ``days`` old,
        at its next merge of the part; the camera event itself stays."""
        shown = f"`plate` Nullable(String) TTL toDateTime(ts) + toIntervalDay({int(days)})"
        create = await self.scalar(
            "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() "
            "AND name = {t:String}",
            {"t": CCTV_EVENTS},
        )
        if shown in str(create):
            return
        await self._run(
            "command",
            f"ALTER TABLE {CCTV_EVENTS} MODIFY COLUMN plate Nullable(String) "
            f"TTL toDateTime(ts) + toIntervalDay({int(days)})",
        )
        log.info("plate retention set", extra={"table": CCTV_EVENTS, "days": days})

    async def _raw_ttls(self, days: int) -> None:
        """Set each raw table's TTL unless it already is that one. Changing a TTL makes
        ClickHouse rewrite the table's parts once in the background (materialize), so that
        rows from before the change expire too; an unchanged TTL costs nothing on a start."""
        for table, column in RAW_TTL_COLUMNS.items():
            engine = await self.scalar(
                "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
                "AND name = {t:String}",
                {"t": table},
            )
            # ClickHouse shows INTERVAL n DAY as toIntervalDay(n).
            shown = f"TTL toDateTime({column}) + toIntervalDay({int(days)})"
            if re.search(re.escape(shown) + r"(\s|$)", str(engine)):
                continue
            await self._run(
                "command",
                f"ALTER TABLE {table} MODIFY TTL toDateTime({column}) + INTERVAL {int(days)} DAY",
            )
            log.info("raw table TTL set", extra={"table": table, "days": days})

    async def _needs_version(self, table: str) -> bool:
        engine = await self.scalar(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
            "AND name = {t:String}",
            {"t": table},
        )
        return engine is not None and "ReplacingMergeTree(version)" not in str(engine)

    async def _copy_unversioned(self, table: str) -> None:
        source = f"{table}_unversioned"
        rows = await self.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            "AND table = {t:String} AND name != 'version'",
            {"t": source},
        )
        columns = ", ".join(r["name"] for r in rows)
        await self._run(
            "command",
            f"INSERT INTO {table} ({columns}, version) SELECT {columns}, 0 FROM {source} FINAL",
        )
        await self._run("command", f"DROP TABLE {source}")
        log.info("table rebuilt with a version column", extra={"table": table})

    async def query(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        result = await self._run("query", sql, parameters=parameters or {})
        names = result.column_names
        return [dict(zip(names, map(_aware, row), strict=True)) for row in result.result_rows]

    async def scalar(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        rows = await self.query(sql, parameters)
        return next(iter(rows[0].values())) if rows else None

    async def insert(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]
    ) -> None:
        await self.insert_many([InsertBlock(table, columns, rows)])

    async def insert_many(self, blocks: Sequence[InsertBlock]) -> None:
        """Store the blocks in order, in one turn of the warehouse thread: a stream that
        keeps the event loop busy would otherwise resume a flush only once per batch it
        handles, one insert at a time. Raises InsertRejected naming the table refused (the
        blocks before it are stored) or WarehouseUnavailable."""
        # Encoded here, on the caller's thread (in C): the warehouse thread then only waits
        # for ClickHouse, which runs without the GIL, instead of competing for it with
        # the stream value by value.
        work: list[tuple[InsertBlock, bytes | None]] = []
        for block in blocks:
            if not block.rows:
                continue
            if block.table in RAW_BYTES_TABLES:
                work.append((block, None))
                continue
            ints = await self._int_bounds(block.table, block.columns)
            work.append((block, json_rows(block.rows, ints)))
        if not work:
            return

        def call() -> None:
            client = self._connect()
            for (table, columns, rows), body in work:
                try:
                    if body is None:
                        client.insert(table, list(rows), column_names=list(columns))
                    else:
                        client.raw_insert(table, list(columns), insert_block=body,
                                          settings=INSERT_SETTINGS, fmt=INSERT_FORMAT)  # fmt: skip
                except OperationalError as exc:
                    raise WarehouseUnavailable(str(exc)) from exc
                except ClickHouseError as exc:
                    raise InsertRejected(table, len(rows), str(exc)) from exc

        await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _int_bounds(self, table: str, columns: Sequence[str]) -> list[tuple[int, int, int]]:
        key = (table, tuple(columns))
        bounds = self._bounds.get(key)
        if bounds is None:
            result = await self._run(
                "query",
                "SELECT name, type FROM system.columns "
                "WHERE database = currentDatabase() AND table = {t:String}",
                parameters={"t": table},
            )
            types = {str(name): str(kind) for name, kind in result.result_rows}
            bounds = self._bounds[key] = int_bounds([types.get(c, "") for c in columns])
        return bounds

    async def analyst_sql(self, request: SqlRequest, limits: Limits) -> SqlAnswer:
        """An analyst's statement, checked, read-only and limited (schemas/sql_engine.py), on
        this process's engine. Only the embedded engine: a ClickHouse server has users and an
        HTTP interface of its own."""
        if not self.embedded:
            raise WarehouseError("analysts' SQL through the API needs the embedded engine")

        def call() -> SqlAnswer:
            engine = os.path.realpath(self._connect().path)
            return run_sql(chdb, engine, request, limits)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)  # type: ignore[no-any-return]

    async def ping(self) -> bool:
        try:
            return bool(await self.scalar("SELECT 1") == 1)
        except WarehouseError:
            return False

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing is best effort at shutdown
                log.warning("clickhouse close failed", exc_info=True)
            self._client = None
        self._executor.shutdown(wait=False)
