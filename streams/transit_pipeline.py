"""The transit job between Kafka and ClickHouse, without faust: decode, validate, apply the
pure logic, dead-letter, publish alarms, store rows, checkpoint.

``handle_batch`` returns only when everything the batch caused is durable (dead letters
and alarms acknowledged by the broker, rows in ClickHouse, state checkpointed); the caller
acknowledges the batch's offsets after that. A crash anywhere replays the batch, and the
replay is harmless: rows are keyed, alarm ids deterministic, and messages already in the
restored checkpoint are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import orjson

from schemas import clickhouse_ddl as ddl
from schemas.alarms import Alarm, AlarmCommand
from schemas.catalog import ALARMS, DEAD_LETTER
from schemas.deadletter import DeadLetter, Reason
from schemas.settings import Settings
from streams.checkpoints import Checkpoint, Checkpoints
from streams.metrics import (
    ALARM_TRANSITIONS,
    BAD_FIXES,
    BATCH_SECONDS,
    CONSUMER_LAG,
    DEAD_LETTERED,
    EVENTS_CONSUMED,
    EVENTS_PRODUCED,
    LATE_EVENTS,
    MESSAGES_CONSUMED,
    REPLAYED_SKIPPED,
    STALE_EVENTS,
)
from streams.sink import BaseSink
from streams.transit_logic import Outputs, PartitionState, TransitProcessor, TransitRules
from streams.validation import check_position, decode_positions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """What the pipeline needs of a Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Producer(Protocol):
    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Awaitable[object]:
        """Enqueue a record; the returned awaitable completes when the broker has it."""
        ...


def alarm_row(a: Alarm) -> tuple[object, ...]:
    return (
        a.id, a.kind, a.entity, a.severity.value, a.state.value, a.started_at, a.last_seen,
        a.cleared_at, a.value, a.threshold, a.version, orjson.dumps(a.context).decode(),
        a.domain, a.level, a.reason.value, a.acknowledged_by, a.acknowledged_at, a.cleared_by,
    )  # fmt: skip


class TransitPipeline:
    def __init__(
        self,
        settings: Settings,
        sink: BaseSink,
        checkpoints: Checkpoints,
        producer: Producer,
        highwater: Callable[[str, int], int | None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.rules = TransitRules.from_settings(settings)
        self.sink = sink
        self.checkpoints = checkpoints
        self.producer = producer
        self.highwater = highwater
        self.clock = clock
        self._processors: dict[tuple[str, int], TransitProcessor] = {}
        self._last_activity: dict[tuple[str, int], float] = {}
        self._lock = asyncio.Lock()
        self._pending_commands: deque[AlarmCommand] = deque(maxlen=10_000)
        # A batch may hold far more rows than one insert should carry.
        self.sink_chunk = max(1, settings.sink_max_rows)

    async def _processor(self, topic: str, partition: int, out: Outputs) -> TransitProcessor:
        key = (topic, partition)
        proc = self._processors.get(key)
        if proc is None:
            saved = await self.checkpoints.load(topic, partition)
            state = PartitionState.loads(saved.state) if saved else None
            proc = self._processors[key] = TransitProcessor(self.rules, partition, state)
            log.info(
                "partition state restored" if saved else "partition state started empty",
                extra={"topic": topic, "partition": partition, "offset": proc.state.offset},
            )
            # Commands that arrived before this partition was loaded.
            for command in self._pending_commands:
                out.alarms.extend(proc.alarms.command(command))
        return proc

    async def apply_commands(self, commands: list[AlarmCommand]) -> None:
        """Acknowledge/clear alarms held open by this worker's partitions."""
        async with self._lock:
            out = Outputs()
            touched: dict[tuple[str, int], TransitProcessor] = {}
            for command in commands:
                applied = False
                for key, proc in self._processors.items():
                    transitions = proc.alarms.command(command)
                    if transitions:
                        out.alarms.extend(transitions)
                        touched[key] = proc
                        applied = True
                if not applied:
                    self._pending_commands.append(command)
            if touched:
                await self._commit(out, touched, [])

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop state of partitions this worker no longer owns (reloaded on reassignment)."""
        for key in partitions:
            self._processors.pop(key, None)
            self._last_activity.pop(key, None)

    async def handle_batch(self, messages: list[Message]) -> None:
        async with self._lock:
            started = time.perf_counter()
            out = Outputs()
            pending: list[Awaitable[object]] = []
            touched: dict[tuple[str, int], TransitProcessor] = {}
            now = self.clock()
            for msg in messages:
                proc = await self._processor(msg.topic, msg.partition, out)
                MESSAGES_CONSUMED.labels(msg.topic).inc()
                if msg.offset <= proc.state.offset:
                    REPLAYED_SKIPPED.labels(msg.topic).inc()
                    continue
                positions, rejections = decode_positions(msg.value)
                EVENTS_CONSUMED.labels(msg.topic).inc(len(positions) + len(rejections))
                for rej in rejections:
                    pending.append(
                        await self._dead_letter(msg, rej.reason, rej.detail, rej.raw, rej.index)
                    )
                for pos in positions:
                    problem = check_position(
                        pos, self.settings.service_area, now, self.settings.max_future_s
                    )
                    if problem is not None:
                        raw = pos.model_dump_json().encode()
                        pending.append(await self._dead_letter(msg, problem[0], problem[1], raw))
                        continue
                    proc.apply(pos, out, now)
                proc.state.offset = msg.offset
                touched[(msg.topic, msg.partition)] = proc
                self._last_activity[(msg.topic, msg.partition)] = time.monotonic()
            for proc in touched.values():
                proc.close_windows(out)
            topic = messages[0].topic if messages else "?"
            BAD_FIXES.labels(topic).inc(out.bad_fixes)
            LATE_EVENTS.labels(topic).inc(out.late)
            STALE_EVENTS.labels(topic).inc(out.stale)
            await self._commit(out, touched, pending)
            self._update_lag(messages)
            BATCH_SECONDS.labels(topic).observe(time.perf_counter() - started)

    async def close_idle(self) -> None:
        """Close every window of partitions that received nothing for ``window_idle_close_s``.

        Without this, the last windows of a finished replay (or of a feed that stopped)
        would wait forever for an event time that never comes.
        """
        async with self._lock:
            limit = time.monotonic() - self.settings.window_idle_close_s
            out = Outputs()
            touched: dict[tuple[str, int], TransitProcessor] = {}
            for key, proc in self._processors.items():
                if proc.has_open_windows() and self._last_activity.get(key, 0.0) <= limit:
                    proc.close_windows(out, force=True)
                    touched[key] = proc
            if touched:
                await self._commit(out, touched, [])

    async def _dead_letter(
        self, msg: Message, reason: Reason, detail: str, raw: bytes, index: int | None = None
    ) -> Awaitable[object]:
        letter = DeadLetter(
            reason=reason,
            detail=detail,
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
            item_index=index,
        )
        DEAD_LETTERED.labels(msg.topic, reason.value).inc()
        log.warning(
            "event dead-lettered",
            extra={
                "reason": reason.value,
                "detail": detail[:300],
                "topic": msg.topic,
                "partition": msg.partition,
                "offset": msg.offset,
                "item_index": index,
            },
        )
        return await self.producer.send(DEAD_LETTER.name, msg.key, raw, letter.headers())

    async def _commit(
        self,
        out: Outputs,
        touched: dict[tuple[str, int], TransitProcessor],
        pending: list[Awaitable[object]],
    ) -> None:
        for alarm in out.alarms:
            ALARM_TRANSITIONS.labels(alarm.kind, alarm.state.value).inc()
            pending.append(
                await self.producer.send(
                    ALARMS.name, alarm.id.encode(), alarm.model_dump_json().encode(), []
                )
            )
            log.info(
                "alarm %s",
                alarm.state.value,
                extra={
                    "alarm_id": alarm.id,
                    "kind": alarm.kind,
                    "entity": alarm.entity,
                    "severity": alarm.severity.value,
                    "value": alarm.value,
                },
            )
        if pending:
            await asyncio.gather(*pending)
            EVENTS_PRODUCED.labels(ALARMS.name).inc(len(out.alarms))
            EVENTS_PRODUCED.labels(DEAD_LETTER.name).inc(len(pending) - len(out.alarms))
        alarm_rows = [alarm_row(a) for a in out.alarms]
        for table, columns, rows in (
            (ddl.POSITIONS, ddl.POSITION_COLUMNS, out.positions),
            (ddl.VEHICLE_1M, ddl.VEHICLE_1M_COLUMNS, out.vehicle_windows),
            (ddl.CORRIDOR_1M_PART, ddl.CORRIDOR_1M_PART_COLUMNS, out.corridor_windows),
            (ddl.ALARMS, ddl.ALARM_COLUMNS, alarm_rows),
            (ddl.ALARM_TRANSITIONS, ddl.ALARM_COLUMNS, alarm_rows),
        ):
            for i in range(0, len(rows), self.sink_chunk):
                self.sink.add(table, columns, rows[i : i + self.sink_chunk])
                if self.sink.due():
                    await self.sink.flush()
        await self.sink.flush()
        if touched:
            await self.checkpoints.save(
                [
                    Checkpoint(topic, partition, proc.state.offset, proc.state.dumps())
                    for (topic, partition), proc in touched.items()
                ]
            )

    def _update_lag(self, messages: list[Message]) -> None:
        if self.highwater is None:
            return
        last: dict[tuple[str, int], int] = {}
        for m in messages:
            last[(m.topic, m.partition)] = max(m.offset, last.get((m.topic, m.partition), -1))
        for (topic, partition), offset in last.items():
            hw = self.highwater(topic, partition)
            if hw is not None:
                CONSUMER_LAG.labels(topic, str(partition)).set(max(0, hw - offset - 1))
