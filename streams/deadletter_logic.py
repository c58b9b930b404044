"""Dead letters into ClickHouse: every rejected event or source record with its reason and
place, so operators and analysts can query what was refused without reading Kafka."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.deadletter import WITHHELD_SOURCES
from schemas.settings import Settings
from streams.alarm_engine import AlarmEngine
from streams.checkpoints import Checkpoints
from streams.pipeline import Emitted, Message, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.validation import Rejection

RAW_LIMIT = 64 * 1024


@dataclass
class DeadLetterState:
    offset: int = -1


def _int(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def letter_row(msg: Message, received_at: datetime, cluster_id: str = "") -> tuple[object, ...]:
    """One table row of a dead letter; it never fails, whatever the headers hold. The
    broker's ``cluster_id`` is part of the letter's identity: a new embedded broker starts
    offsets at 0 again, and (partition, offset) alone would overwrite the earlier letters."""
    h = dict(msg.headers)

    def text(name: str) -> str:
        return (h.get(name) or b"").decode("utf-8", "replace")

    topic, connector = text("source.topic"), text("source.connector")
    raw = msg.value or b""
    withheld = topic in WITHHELD_SOURCES or connector in WITHHELD_SOURCES
    shown = "<withheld: personal data>" if withheld else raw[:RAW_LIMIT].decode("utf-8", "replace")
    return (msg.partition, msg.offset, received_at, text("reason") or "unknown", text("detail"),
            topic, _int(h.get("source.partition")), _int(h.get("source.offset")),
            _int(h.get("item.index")), connector, text("source.location"), shown, len(raw),
            cluster_id)  # fmt: skip


class DeadLetterProcessor:
    def __init__(self, book: RuleBook, saved: bytes | None = None, cluster_id: str = "") -> None:
        self.cluster_id = cluster_id
        self.state = (
            msgspec.json.decode(saved, type=DeadLetterState) if saved else DeadLetterState()
        )
        self.alarms = AlarmEngine(book)  # holds none; the pipeline asks every processor

    def offset(self, topic: str) -> int:
        return self.state.offset

    def handle(self, msg: Message, now: datetime, out: Emitted) -> tuple[int, list[Rejection]]:
        out.add(ddl.DEAD_LETTERS, ddl.DEAD_LETTER_COLUMNS, [letter_row(msg, now, self.cluster_id)])
        self.state.offset = msg.offset
        return 1, []

    def tick(self, now: datetime, out: Emitted) -> bool:
        return False

    def skip(self, topic: str, offset: int) -> None:
        self.state.offset = offset

    def state_root(self) -> object:
        return self.state

    def dumps(self) -> bytes:
        return msgspec.json.encode(self.state)


def deadletter_pipeline(
    settings: Settings, book: RuleBook, sink: BaseSink, checkpoints: Checkpoints,
    producer: Producer, highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC), cluster_id: str = "",
) -> Pipeline:  # fmt: skip
    def factory(key: StateKey, saved: bytes | None) -> DeadLetterProcessor:
        return DeadLetterProcessor(book, saved, cluster_id)

    return Pipeline(
        "deadletters", settings, sink, checkpoints, producer, factory, highwater=highwater,
        clock=clock,
    )  # fmt: skip
