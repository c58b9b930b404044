"""In-memory doubles of the pipeline's contracts (sink, checkpoints, producer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from streams.checkpoints import Checkpoint
from streams.sink import BaseSink


class MemorySink(BaseSink):
    """Stores rows keyed like the ClickHouse tables, so replays replace instead of adding."""

    KEYS = {
        "transit_positions": (0, 1),
        "transit_vehicle_1m": (0, 1),
        "alarms": (0,),
        "alarm_transitions": (0, 10),
    }

    def __init__(self, fail_times: int = 0) -> None:
        self.buffer: list[tuple[str, Sequence[Any]]] = []
        self.tables: dict[str, dict[tuple[Any, ...], Sequence[Any]]] = {}
        self.inserted: dict[str, int] = {}
        self.flushes = 0
        self.fail_times = fail_times

    @property
    def pending_rows(self) -> int:
        return len(self.buffer)

    def add(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.buffer.extend((table, r) for r in rows)

    async def flush(self) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("clickhouse down")
        for table, row in self.buffer:
            key = tuple(row[i] for i in self.KEYS[table])
            self.tables.setdefault(table, {})[key] = row
            self.inserted[table] = self.inserted.get(table, 0) + 1
        self.buffer.clear()
        self.flushes += 1

    def rows(self, table: str) -> list[Sequence[Any]]:
        return list(self.tables.get(table, {}).values())


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.saved: dict[tuple[str, int], Checkpoint] = {}
        self.saves = 0

    async def load(self, topic: str, partition: int) -> Checkpoint | None:
        return self.saved.get((topic, partition))

    async def save(self, checkpoints: list[Checkpoint]) -> None:
        """As the ClickHouse store: a head replaces the head, entity rows merge."""
        for c in checkpoints:
            old = self.saved.get((c.topic, c.partition))
            entries = dict(old.entries) if old is not None else {}
            entries.update(c.entries)
            live = {k: v for k, v in entries.items() if v is not None}
            self.saved[(c.topic, c.partition)] = Checkpoint(
                c.topic, c.partition, c.offset, c.state, live
            )
        self.saves += 1


class MemoryProducer:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Awaitable[object]:
        self.records.append((topic, key, value, headers))
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def on(self, topic: str) -> list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]:
        return [r for r in self.records if r[0] == topic]


class RecordingPublisher:
    """A connector's publisher without a broker: keeps what was published, dead-lettered
    and skipped, and tallies them as the real one does."""

    state: object = None

    def __init__(self) -> None:
        from connectors.tally import Tally

        self.tally = Tally()
        self.events: list[Any] = []
        self.dead: list[tuple[str, str, bytes]] = []  # (reason, detail, raw)

    async def publish(self, spec: object, batch: Sequence[Any], key: object) -> int:
        self.events.extend(batch)
        self.tally.published += len(batch)
        return len(batch)

    def skip(self, reason: str, n: int = 1) -> None:
        self.tally.skipped[reason] += n

    async def dead_letter(self, raw: bytes, reason: str, detail: str, source: str) -> None:
        self.dead.append((reason, detail, raw))
        self.tally.dead_lettered[reason] += 1
