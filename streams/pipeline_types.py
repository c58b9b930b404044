"""What a pipeline and its processors exchange: Kafka messages in; rows, alarm transitions
and rejections out; and the contracts of processors and producers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import orjson

from schemas.alarms import Alarm
from streams.alarm_engine import AlarmEngine
from streams.validation import Rejection

StateKey = tuple[str, int]


class Message(NamedTuple):
    """What the pipeline needs of a Kafka record. A named tuple: made once per record on
    the hot path, several times faster than a frozen dataclass."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Emitted:
    """Rows and alarm transitions produced while handling one batch."""

    tables: dict[str, tuple[Sequence[str], list[Sequence[Any]]]] = field(default_factory=dict)
    alarms: list[Alarm] = field(default_factory=list)
    # Items judged after their own message was handled (held for their entity's lateness
    # in case a step they follow was still on its way), dead-lettered with their origin.
    rejected: list[tuple[Message, Rejection]] = field(default_factory=list)

    def add(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.tables.setdefault(table, (columns, []))[1].extend(rows)

    def merge(self, other: Emitted) -> None:
        for table, (columns, rows) in other.tables.items():
            self.add(table, columns, rows)
        self.alarms.extend(other.alarms)
        self.rejected.extend(other.rejected)


class Processor(Protocol):
    alarms: AlarmEngine

    def offset(self, topic: str) -> int:
        """The last offset of ``topic`` whose effects are in this processor's state."""
        ...

    def handle(self, msg: Message, now: datetime, out: Emitted) -> tuple[int, Sequence[Rejection]]:
        """Apply one message (and record its offset); return (events seen, rejections)."""
        ...

    def tick(self, now: datetime, out: Emitted) -> bool:
        """Periodic work on each entity's own clock (closing windows of quiet entities,
        silence checks); True if state changed."""
        ...

    def skip(self, topic: str, offset: int) -> None:
        """Record ``offset`` as applied without applying it (it was dead-lettered)."""
        ...

    def state_root(self) -> object:
        """The state this processor checkpoints (its entity clocks are resumed at load)."""
        ...

    def dumps(self) -> bytes: ...


class Producer(Protocol):
    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Awaitable[object]:
        """Enqueue a record; the returned awaitable completes when the broker has it."""
        ...


ProcessorFactory = Callable[[StateKey, bytes | None], Processor]


def alarm_row(a: Alarm) -> tuple[object, ...]:
    return (
        a.id, a.kind, a.entity, a.severity.value, a.state.value, a.started_at, a.last_seen,
        a.cleared_at, a.value, a.threshold, a.version, orjson.dumps(a.context).decode(),
        a.domain, a.level, a.reason.value, a.acknowledged_by, a.acknowledged_at, a.cleared_by,
    )  # fmt: skip


def by_partition(topic: str, partition: int) -> StateKey:
    return (topic, partition)


def processing_error(exc: BaseException) -> str:
    """What a dead letter says about our own failure: the exception's type and message,
    cut short (a message may quote the input, which may hold personal data)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"
