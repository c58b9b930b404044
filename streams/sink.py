"""Sinks: a tiny contract (``add`` rows, ``flush`` them) and the batching ClickHouse sink.

The stream calls ``flush`` before its batch is acknowledged, so a Kafka offset is committed
only after its rows are stored. Tables are ReplacingMergeTrees keyed by the row's identity,
which makes a replayed batch harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from schemas.warehouse import (
    InsertBlock,
    InsertRejected,
    Warehouse,
    WarehouseError,
    WarehouseUnavailable,
)
from streams.metrics import SINK_FAILURES, SINK_FLUSH_SECONDS, SINK_ROWS

log = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """A write the destination refused for good (bad rows, bad schema)."""


class BaseSink(ABC):
    @abstractmethod
    def add(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Buffer rows; cheap, never blocks."""

    @abstractmethod
    async def flush(self) -> None:
        """Store every buffered row, or raise. Buffered rows stay buffered on failure."""

    @property
    @abstractmethod
    def pending_rows(self) -> int: ...

    def due(self) -> bool:
        return False


class ClickHouseSink(BaseSink):
    def __init__(
        self,
        warehouse: Warehouse,
        max_rows: int = 20_000,
        max_delay_s: float = 1.0,
        retry_max_s: float = 30.0,
        name: str = "clickhouse",
    ) -> None:
        self.warehouse = warehouse
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self.retry_max_s = retry_max_s
        self.name = name
        self._buffers: dict[str, tuple[Sequence[str], list[Sequence[Any]]]] = {}
        self._pending = 0
        self._oldest: float | None = None
        self._flushing = asyncio.Lock()

    @property
    def pending_rows(self) -> int:
        return self._pending

    def add(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        cols, buf = self._buffers.setdefault(table, (columns, []))
        if tuple(cols) != tuple(columns):
            raise SinkError(f"table {table} added with two column lists")
        buf.extend(rows)
        self._pending += len(rows)
        if self._oldest is None:
            self._oldest = time.monotonic()

    def due(self) -> bool:
        if self._pending >= self.max_rows:
            return True
        return self._oldest is not None and time.monotonic() - self._oldest >= self.max_delay_s

    async def flush(self) -> None:
        """Store what is buffered now. Rows added while this runs (the stream handling its
        next batch) wait for the next flush; flushes run one at a time, in order, so a
        table's rows reach ClickHouse in the order they were added."""
        async with self._flushing:
            if not self._pending:
                return
            started = time.perf_counter()
            buffers, self._buffers = self._buffers, {}
            self._pending, self._oldest = 0, None
            try:
                # One insert carries at most max_rows; all go in one call. On a failure
                # every row stays buffered, and a retry writes again what was stored
                # (rows are keyed: harmless).
                await self._insert_with_retry(
                    [InsertBlock(table, columns, rows[i : i + self.max_rows])
                     for table, (columns, rows) in buffers.items()
                     for i in range(0, len(rows), self.max_rows)]
                )  # fmt: skip
                for table, (_, rows) in buffers.items():
                    SINK_ROWS.labels(table).inc(len(rows))
            except BaseException:
                # What was not stored stays buffered, ahead of what was added since.
                for table, (columns, rows) in self._buffers.items():
                    buffers.setdefault(table, (columns, []))[1].extend(rows)
                self._buffers = buffers
                self._pending = sum(len(rows) for _, rows in buffers.values())
                self._oldest = time.monotonic()
                raise
            SINK_FLUSH_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _insert_with_retry(self, blocks: list[InsertBlock]) -> None:
        delay = 0.5
        while True:
            try:
                await self.warehouse.insert_many(blocks)
                return
            except WarehouseUnavailable as exc:
                # Blocking the stream is right: the offsets must not move past unstored rows.
                SINK_FAILURES.labels(self.name, "unavailable").inc()
                wait = min(max(exc.retry_after, delay), self.retry_max_s)
                log.warning(
                    "clickhouse unavailable, retrying",
                    extra={
                        "tables": sorted({b.table for b in blocks}),
                        "rows": sum(len(b.rows) for b in blocks),
                        "retry_in_s": wait,
                        "error": str(exc),
                    },
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.retry_max_s)
            except InsertRejected as exc:
                SINK_FAILURES.labels(self.name, "rejected").inc()
                raise SinkError(str(exc)) from exc
            except WarehouseError as exc:
                SINK_FAILURES.labels(self.name, "rejected").inc()
                raise SinkError(f"ClickHouse rejected an insert: {exc}") from exc
