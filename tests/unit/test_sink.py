from collections.abc import Sequence
from typing import Any

import pytest

from schemas.warehouse import InsertBlock, InsertRejected, WarehouseUnavailable
from streams.sink import ClickHouseSink, SinkError


class FlakyWarehouse:
    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.inserts: list[tuple[str, int]] = []

    async def insert_many(self, blocks: Sequence[InsertBlock]) -> None:
        for block in blocks:
            if self.errors:
                raise self.errors.pop(0)
            self.inserts.append((block.table, len(block.rows)))


def sink(wh: FlakyWarehouse, **kw: Any) -> ClickHouseSink:
    return ClickHouseSink(wh, **kw)  # type: ignore[arg-type]


async def test_rows_are_batched_per_table_until_flush() -> None:
    wh = FlakyWarehouse([])
    s = sink(wh, max_rows=10, max_delay_s=60)
    s.add("a", ("x",), [(1,), (2,)])
    s.add("b", ("y",), [(3,)])
    s.add("a", ("x",), [(4,)])
    assert s.pending_rows == 4 and not s.due() and wh.inserts == []
    await s.flush()
    assert sorted(wh.inserts) == [("a", 3), ("b", 1)] and s.pending_rows == 0


async def test_one_insert_carries_at_most_max_rows() -> None:
    wh = FlakyWarehouse([])
    s = sink(wh, max_rows=2, max_delay_s=60)
    s.add("a", ("x",), [(i,) for i in range(5)])
    await s.flush()
    assert wh.inserts == [("a", 2), ("a", 2), ("a", 1)]


async def test_due_by_size_and_by_age() -> None:
    s = sink(FlakyWarehouse([]), max_rows=3, max_delay_s=0.0)
    s.add("a", ("x",), [(1,)])
    assert s.due()  # max delay 0: immediately due
    s2 = sink(FlakyWarehouse([]), max_rows=2, max_delay_s=60)
    s2.add("a", ("x",), [(1,), (2,)])
    assert s2.due()


async def test_unavailable_clickhouse_is_retried_without_losing_rows() -> None:
    wh = FlakyWarehouse([WarehouseUnavailable("down", retry_after=0.01)] * 2)
    s = sink(wh, retry_max_s=0.02)
    s.add("a", ("x",), [(1,), (2,)])
    await s.flush()
    assert wh.inserts == [("a", 2)]


async def test_rejected_rows_raise_and_stay_buffered() -> None:
    wh = FlakyWarehouse([InsertRejected("a", 1, "bad type")])
    s = sink(wh)
    s.add("a", ("x",), [(1,)])
    with pytest.raises(SinkError, match="rejected 1 rows for a"):
        await s.flush()
    assert s.pending_rows == 1
    await s.flush()
    assert wh.inserts == [("a", 1)]


async def test_mismatched_columns_are_an_error() -> None:
    s = sink(FlakyWarehouse([]))
    s.add("a", ("x",), [(1,)])
    with pytest.raises(SinkError):
        s.add("a", ("y",), [(1,)])
