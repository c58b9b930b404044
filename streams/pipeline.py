"""The job between Kafka and ClickHouse that every domain shares, without faust.

A domain supplies processors (one per unit of state, usually a Kafka partition) that turn
messages into rows, alarm transitions and rejections. ``handle_batch`` returns only when
everything the batch caused is durable (dead letters and alarm transitions acknowledged
by the broker, rows in ClickHouse, and, unless ``checkpoint_every_s`` defers it, state
checkpointed), or, with ``overlap_flush``, once its rows are on their way (they are stored
while the next batch is handled); either way the caller acknowledges no more than
``durable_offsets()``, which counts a batch only once its rows are stored. A crash
anywhere replays from the last checkpoint, and the replay is harmless: rows are keyed,
alarm ids deterministic, and messages already in the restored checkpoint are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import groupby
from math import inf
from operator import attrgetter

from schemas import clickhouse_ddl as ddl
from schemas.alarms import AlarmCommand
from schemas.catalog import ALARM_COMMANDS, ALARMS, DEAD_LETTER
from schemas.deadletter import DeadLetter, Reason
from schemas.settings import Settings
from sitroom.logs import WarningSummary
from streams.alarm_engine import ForbiddenCommand
from streams.checkpoints import Checkpoint, Checkpoints
from streams.metrics import (
    ALARM_TRANSITIONS,
    BATCH_SECONDS,
    CHECKPOINT_BYTES,
    CONSUMER_LAG,
    DEAD_LETTERED,
    EVENTS_CONSUMED,
    EVENTS_PRODUCED,
    MESSAGES_CONSUMED,
    PROCESSING_ERRORS,
    REPLAYED_SKIPPED,
)
from streams.pipeline_types import (
    Emitted,
    Message,
    Processor,
    ProcessorFactory,
    Producer,
    StateKey,
    alarm_row,
    by_partition,
    processing_error,
)
from streams.sink import BaseSink
from streams.state_split import join, split
from streams.validation import Rejection
from streams.windows import resume_clocks

log = logging.getLogger(__name__)

__all__ = ["Emitted", "Message", "Pipeline", "Processor", "Producer", "StateKey", "alarm_row",
           "by_partition", "processing_error"]  # fmt: skip


_topic_partition = attrgetter("topic", "partition")
_topic = attrgetter("topic")
_offset = attrgetter("offset")


def _command_record(command: AlarmCommand) -> Message:
    """A command's record when its Kafka coordinates are not known (tests, replays)."""
    value = command.model_dump_json().encode()
    return Message(ALARM_COMMANDS.name, 0, -1, command.alarm_id.encode(), value)


class Pipeline:
    def __init__(
        self,
        name: str,
        settings: Settings,
        sink: BaseSink,
        checkpoints: Checkpoints,
        producer: Producer,
        factory: ProcessorFactory,
        state_key: Callable[[str, int], StateKey] = by_partition,
        highwater: Callable[[str, int], int | None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self.settings = settings
        self.sink = sink
        self.checkpoints = checkpoints
        self.producer = producer
        self.factory = factory
        self.state_key = state_key
        self.highwater = highwater
        self.clock = clock
        self._processors: dict[StateKey, Processor] = {}
        self._tick_failures: dict[StateKey, str] = {}
        self._batch_ticked: dict[StateKey, float] = {}  # pipeline clock of the last batch tick
        # Per state key: entity → hash of the entry last checkpointed.
        self._written: dict[StateKey, dict[str, int]] = {}
        # 0: checkpoint with every batch (a faust agent acknowledges a batch as soon as it
        # returns). The batch consumer sets an interval and commits only durable offsets:
        # between checkpoints rows are written (idempotent) and a crash replays them.
        self.checkpoint_every_s = 0.0
        self._unsaved: dict[StateKey, Processor] = {}
        # The batch consumer's pipelines store a batch's rows while the next batch is
        # handled: ClickHouse works without the GIL meanwhile. A checkpoint is only taken
        # once every row the state reflects is stored (see _settle).
        self.overlap_flush = False
        self._inflight: asyncio.Future[None] | None = None
        self._last_saved = time.monotonic()
        self._handled: dict[tuple[str, int], int] = {}  # newest offset handled
        self._durable: dict[tuple[str, int], int] = {}  # newest offset in a checkpoint
        self._latest: dict[tuple[str, int], int] = {}  # newest offset in memory's state
        # A checkpoint being written behind the stream, and the states it holds.
        self._saving: asyncio.Future[None] | None = None
        self._saving_keys: set[StateKey] = set()
        self._lock = asyncio.Lock()
        self._failed: BaseException | None = None
        self._pending_commands: deque[tuple[AlarmCommand, Message]] = deque(maxlen=10_000)
        # A bad feed refuses item after item: one line per topic and reason per interval.
        self._refusals = WarningSummary(log, "event dead-lettered")
        # A batch may hold far more rows than one insert should carry.
        self.sink_chunk = max(1, settings.sink_max_rows)

    async def _processor(self, key: StateKey, out: Emitted) -> Processor:
        proc = self._processors.get(key)
        if proc is None:
            saved = await self.checkpoints.load(*key)
            entries = {k: v for k, v in saved.entries.items() if v} if saved else {}
            self._written[key] = {k: hash(v) for k, v in entries.items()}
            try:
                proc = self.factory(key, join(saved.state, entries) if saved else None)
            except Exception as exc:
                if saved is None:
                    raise
                # A checkpoint this version cannot read (written by an older one): start
                # the state afresh at its offset rather than stop every domain. Open
                # windows and anchors of that state are lost; nothing is applied twice.
                log.warning(
                    "checkpoint unreadable, state started empty at its offset",
                    extra={"pipeline": self.name, "state": f"{key[0]}/{key[1]}",
                           "offset": saved.offset, "error": processing_error(exc)},
                )  # fmt: skip
                proc = self.factory(key, None)
                proc.skip(key[0], saved.offset)
                # Every old entity row is rewritten or marked gone at the next checkpoint.
                self._written[key] = dict.fromkeys(entries, 0)
            if saved is not None:
                resume_clocks(proc.state_root(), self.clock().timestamp())
            self._processors[key] = proc
            log.info(
                "state restored" if saved else "state started empty",
                extra={
                    "pipeline": self.name,
                    "state": f"{key[0]}/{key[1]}",
                    "offset": saved.offset if saved else -1,
                },
            )
            # Commands that arrived before this state was loaded.
            for command, origin in self._pending_commands:
                self._command(proc, command, origin, out)
        return proc

    async def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Load the state of newly assigned partitions now, not at their first message:
        restored windows of a partition that receives nothing more must still close."""
        async with self._lock:
            await self._settle()
            self._check_healthy()
            out = Emitted()
            for key in sorted({self.state_key(t, p) for t, p in partitions}):
                await self._processor(key, out)
            if out.alarms:
                await self._commit(out, {}, [])

    async def release(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Checkpoint, then drop, the state of revoked partitions (under the same key it
        was loaded by), so the old owner stops ticking it and never overwrites the new
        owner's checkpoint."""
        async with self._lock:
            await self._settle(quiet=True)
            keys = {self.state_key(t, p) for t, p in partitions}
            if self._failed is None and keys & self._unsaved.keys():
                await self._save({k: v for k, v in self._unsaved.items() if k in keys})
            for key in keys:
                if self._processors.pop(key, None) is not None:
                    log.info(
                        "state released",
                        extra={"pipeline": self.name, "state": f"{key[0]}/{key[1]}"},
                    )
                self._tick_failures.pop(key, None)
                self._batch_ticked.pop(key, None)
                self._written.pop(key, None)

    def owned(self) -> list[StateKey]:
        return sorted(self._processors)

    def durable_offsets(self) -> dict[tuple[str, int], int]:
        """Per topic-partition, the next offset to commit: everything before it is in
        ClickHouse and in a checkpoint."""
        out: dict[tuple[str, int], int] = {}
        if self._failed is not None:
            return out  # state in memory is ahead of what is stored
        for tp, offset in self._handled.items():
            key = self.state_key(*tp)
            if key not in self._unsaved and key not in self._saving_keys:
                out[tp] = offset + 1
            elif tp in self._durable:
                out[tp] = self._durable[tp] + 1
        return out

    def forget_offsets(self, partitions: Iterable[tuple[str, int]]) -> None:
        for tp in partitions:
            self._handled.pop(tp, None)
            self._durable.pop(tp, None)
            self._latest.pop(tp, None)

    async def save_now(self) -> None:
        """Checkpoint every state with unsaved changes (a clean stop)."""
        async with self._lock:
            await self._settle(quiet=True)
            if self._failed is None and self._unsaved:
                await self._save(dict(self._unsaved))

    async def handle_batch(self, messages: list[Message]) -> None:
        async with self._lock:
            await self._save_if_due()
            self._check_healthy()
            started = time.perf_counter()
            out = Emitted()
            pending: list[Awaitable[object]] = []
            touched: dict[StateKey, Processor] = {}
            now = self.clock()
            # Per run of one partition's messages (a fetch hands them over that way), not
            # per message: at one event per message this loop is on the hot path.
            groups: dict[StateKey, list[Message]] = {}
            handled: dict[tuple[str, int], int] = {}  # counted once the batch is stored
            for tp, run in groupby(messages, _topic_partition):
                records = list(run)
                groups.setdefault(self.state_key(*tp), []).extend(records)
                newest = max(map(_offset, records))
                if newest > handled.get(tp, -1):
                    handled[tp] = newest
                if newest > self._latest.get(tp, -1):
                    self._latest[tp] = newest
            counts: dict[str, list[int]] = {}  # topic → [messages, events, replayed]
            for key, group in groups.items():
                proc = await self._processor(key, out)
                fresh = []
                for topic, run in groupby(group, _topic):
                    records = list(run)
                    count = counts.setdefault(topic, [0, 0, 0])
                    count[0] += len(records)
                    done = proc.offset(topic)
                    if min(map(_offset, records)) > done:
                        fresh.extend(records)
                        continue
                    for m in records:
                        if m.offset <= done:
                            count[2] += 1
                        else:
                            fresh.append(m)
                if not fresh:
                    continue
                for msg, events, rej in self._handle(proc, fresh, now, out):
                    counts[msg.topic][1] += events
                    for r in rej:
                        pending.append(await self._dead_letter(msg, r))
                touched[key] = proc
            for topic, (n_messages, n_events, n_replayed) in counts.items():
                MESSAGES_CONSUMED.labels(topic).inc(n_messages)
                EVENTS_CONSUMED.labels(topic).inc(n_events)
                if n_replayed:
                    REPLAYED_SKIPPED.labels(topic).inc(n_replayed)
            stamp = now.timestamp()
            for key, proc in touched.items():
                # A processor that brings its own entities up to date per event needs the
                # batch's tick only for its quiet ones, and a tick walks them all: it may
                # ask for one at most every ``batch_tick_every_s`` (the timer still ticks).
                every = getattr(proc, "batch_tick_every_s", 0.0)
                if every and stamp - self._batch_ticked.get(key, -inf) < every:
                    continue
                self._batch_ticked[key] = stamp
                self._tick_one(key, proc, now, out)
            await self._commit(out, touched, pending, handled)
            self._update_lag(handled)
            BATCH_SECONDS.labels(messages[0].topic if messages else "?").observe(
                time.perf_counter() - started
            )

    def _handle(
        self, proc: Processor, messages: list[Message], now: datetime, out: Emitted
    ) -> Iterable[tuple[Message, int, Sequence[Rejection]]]:
        """Apply a processor's new messages: all at once where it can (``handle_many``),
        else one by one; our own failure dead-letters the message(s) it happened on."""
        many = getattr(proc, "handle_many", None)
        if many is not None:
            scratch = Emitted()
            try:
                results: list[tuple[Message, int, Sequence[Rejection]]] = many(
                    messages, now, scratch
                )
            except Exception as exc:
                # Items are isolated inside handle_many; this is a failure around them.
                self._log_failure(messages[0])
                for msg in messages:
                    proc.skip(msg.topic, msg.offset)
                return [(m, 1, [self._failed_item(m, exc)]) for m in messages]
            out.merge(scratch)
            return results
        done: list[tuple[Message, int, Sequence[Rejection]]] = []
        for msg in messages:
            scratch = Emitted()
            try:
                events, rejections = proc.handle(msg, now, scratch)
            except Exception as exc:
                # Our own bug or drift on this message: it alone is dead-lettered.
                proc.skip(msg.topic, msg.offset)
                self._log_failure(msg)
                done.append((msg, 1, [self._failed_item(msg, exc)]))
            else:
                out.merge(scratch)
                done.append((msg, events, rejections))
        return done

    @staticmethod
    def _failed_item(msg: Message, exc: Exception) -> Rejection:
        return Rejection(Reason.PROCESSING_ERROR, processing_error(exc), msg.value or b"")

    def _log_failure(self, msg: Message) -> None:
        log.exception(
            "message failed", extra={"pipeline": self.name, "topic": msg.topic,
                                     "partition": msg.partition, "offset": msg.offset},
        )  # fmt: skip

    async def tick(self) -> None:
        """Periodic work of every processor: without it the last windows of a finished
        replay, or the silence of a source that stopped, would wait for an event that
        never comes."""
        async with self._lock:
            await self._save_if_due()
            self._check_healthy()
            self._refusals.flush(time.monotonic())
            out = Emitted()
            touched: dict[StateKey, Processor] = {}
            now = self.clock()
            for key, proc in self._processors.items():
                if self._tick_one(key, proc, now, out):
                    touched[key] = proc
            if touched or out.alarms or out.tables or out.rejected:
                await self._commit(out, touched, [])

    async def apply_commands(
        self, commands: list[AlarmCommand], origins: list[Message] | None = None
    ) -> None:
        """Acknowledge/clear alarms held open by this worker's processors; a command whose
        sender may not act on the alarm is dead-lettered as ``forbidden`` (``origins``: the
        commands' records, for the dead letter)."""
        async with self._lock:
            self._check_healthy()
            out = Emitted()
            touched: dict[StateKey, Processor] = {}
            for i, command in enumerate(commands):
                origin = origins[i] if origins else _command_record(command)
                applied = False
                for key, proc in self._processors.items():
                    if self._command(proc, command, origin, out):
                        touched[key] = proc
                        applied = True
                if not applied:
                    self._pending_commands.append((command, origin))
            if touched or out.rejected:
                await self._commit(out, touched, [])

    @staticmethod
    def _command(proc: Processor, command: AlarmCommand, origin: Message, out: Emitted) -> bool:
        """Apply one command to one processor; True when it held the alarm."""
        try:
            transitions = proc.alarms.command(command)
        except ForbiddenCommand as exc:
            out.rejected.append(
                (origin, Rejection(Reason.FORBIDDEN, str(exc), origin.value or b""))
            )
            return True
        out.alarms.extend(transitions)
        return bool(transitions)

    def _tick_one(self, key: StateKey, proc: Processor, now: datetime, out: Emitted) -> bool:
        scratch = Emitted()
        try:
            changed = proc.tick(now, scratch)
        except Exception as exc:
            # A tick has no message to dead-letter: count it, say it once per kind of
            # failure, and let every other processor and domain go on.
            PROCESSING_ERRORS.labels(self.name).inc()
            detail = processing_error(exc)
            if self._tick_failures.get(key) != detail:
                self._tick_failures[key] = detail
                log.exception(
                    "tick failed", extra={"pipeline": self.name, "state": f"{key[0]}/{key[1]}"}
                )
            return False
        self._tick_failures.pop(key, None)
        out.merge(scratch)
        return changed

    def _check_healthy(self) -> None:
        if self._failed is not None:
            raise RuntimeError(
                f"{self.name} pipeline stopped after an earlier failure"
            ) from self._failed

    async def _dead_letter(self, msg: Message, rej: Rejection) -> Awaitable[object]:
        letter = DeadLetter(
            reason=rej.reason,
            detail=rej.detail,
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
            item_index=rej.index,
        )
        DEAD_LETTERED.labels(msg.topic, rej.reason.value).inc()
        if rej.reason is Reason.PROCESSING_ERROR:
            PROCESSING_ERRORS.labels(self.name).inc()
        self._refusals.warn((msg.topic, rej.reason.value), {
            "reason": rej.reason.value, "detail": rej.detail[:300], "topic": msg.topic,
            "partition": msg.partition, "offset": msg.offset, "item_index": rej.index,
        })  # fmt: skip
        return await self.producer.send(DEAD_LETTER.name, msg.key, rej.raw, letter.headers())

    async def _commit(
        self,
        out: Emitted,
        touched: dict[StateKey, Processor],
        pending: list[Awaitable[object]],
        handled: dict[tuple[str, int], int] | None = None,
    ) -> None:
        try:
            await self._commit_unchecked(out, touched, pending, handled)
        except BaseException as exc:
            # State in memory is now ahead of what is stored: only a restart from the
            # checkpoint is safe, so refuse all further work.
            self._failed = exc
            raise

    async def _commit_unchecked(
        self,
        out: Emitted,
        touched: dict[StateKey, Processor],
        pending: list[Awaitable[object]],
        handled: dict[tuple[str, int], int] | None,
    ) -> None:
        for msg, rej in out.rejected:
            pending.append(await self._dead_letter(msg, rej))
        dead_letters = len(pending)
        for alarm in out.alarms:
            ALARM_TRANSITIONS.labels(alarm.kind, alarm.state.value).inc()
            pending.append(
                await self.producer.send(
                    ALARMS.name, alarm.id.encode(), alarm.model_dump_json().encode(), []
                )
            )
            log.info(
                "alarm %s", alarm.state.value,
                extra={"alarm_id": alarm.id, "kind": alarm.kind, "entity": alarm.entity,
                       "severity": alarm.severity.value, "alarm_level": alarm.level,
                       "reason": alarm.reason.value, "value": alarm.value},
            )  # fmt: skip
        if pending:
            await asyncio.gather(*pending)
            EVENTS_PRODUCED.labels(ALARMS.name).inc(len(out.alarms))
            EVENTS_PRODUCED.labels(DEAD_LETTER.name).inc(dead_letters)
        alarm_rows = [alarm_row(a) for a in out.alarms]
        out.add(ddl.ALARMS, ddl.ALARM_COLUMNS, alarm_rows)
        out.add(ddl.ALARM_TRANSITIONS, ddl.ALARM_COLUMNS, alarm_rows)
        for table, (columns, rows) in out.tables.items():
            if self.overlap_flush:
                # Stored in the background, behind the previous batch's rows: flushing a
                # full sink here would make the stream wait for ClickHouse after all.
                self.sink.add(table, columns, rows)
                continue
            for i in range(0, len(rows), self.sink_chunk):
                self.sink.add(table, columns, rows[i : i + self.sink_chunk])
                if self.sink.due():
                    await self.sink.flush()
        if self.overlap_flush:
            self._inflight = asyncio.ensure_future(self._stored(self._inflight, touched, handled))
            return
        await self.sink.flush()
        self._mark_stored(touched, handled)
        if self._checkpoint_due():
            await self._save(dict(self._unsaved))

    async def _stored(self, before: asyncio.Future[None] | None,
                      touched: dict[StateKey, Processor],
                      handled: dict[tuple[str, int], int] | None) -> None:  # fmt: skip
        """Store a batch's rows after the batch before it, then count it as handled."""
        try:
            if before is not None:
                await before
            await self.sink.flush()
        except BaseException as exc:
            self._failed = exc
            raise
        self._mark_stored(touched, handled)

    def _mark_stored(self, touched: dict[StateKey, Processor],
                     handled: dict[tuple[str, int], int] | None) -> None:  # fmt: skip
        self._unsaved.update(touched)
        for tp, offset in (handled or {}).items():
            if offset > self._handled.get(tp, -1):
                self._handled[tp] = offset

    def _checkpoint_due(self) -> bool:
        every = self.checkpoint_every_s
        return bool(self._unsaved) and (every <= 0 or time.monotonic() - self._last_saved >= every)

    async def _settle(self, quiet: bool = False) -> None:
        """Wait until the rows of every batch handled so far are stored, and a checkpoint
        being written is written. ``quiet``: a failure is left to ``_failed`` (a stop or a
        revoke goes on without saving)."""
        for name in ("_inflight", "_saving"):
            pending: asyncio.Future[None] | None = getattr(self, name)
            setattr(self, name, None)
            if pending is None:
                continue
            try:
                await pending
            except BaseException:
                if not quiet:
                    raise

    async def _save_if_due(self) -> None:
        """With overlapping flushes the checkpoint is taken now and written behind the
        stream: once the rows of every batch it reflects are stored (it waits for the
        flushes in flight), so the stream does not stop for it. One at a time."""
        if not self.overlap_flush or time.monotonic() - self._last_saved < self.checkpoint_every_s:
            return
        if self._saving is not None:
            if not self._saving.done():
                return
            saving, self._saving = self._saving, None
            await saving  # a failure is raised here (and in _failed)
        if self._failed is not None or not self._unsaved:
            return
        procs = dict(self._unsaved)
        saved, written = self._snapshot(procs)
        durable = {tp: o for tp, o in self._latest.items() if self.state_key(*tp) in procs}
        self._unsaved.clear()
        self._saving_keys = set(procs)
        self._last_saved = time.monotonic()
        self._saving = asyncio.ensure_future(
            self._write_behind(self._inflight, saved, written, durable)
        )

    async def _write_behind(self, inflight: asyncio.Future[None] | None,
                            saved: list[Checkpoint], written: dict[StateKey, dict[str, int]],
                            durable: dict[tuple[str, int], int]) -> None:  # fmt: skip
        try:
            if inflight is not None:
                await asyncio.shield(inflight)  # the batches this state reflects
            await self.checkpoints.save(saved)
        except BaseException as exc:
            self._failed = exc
            raise
        self._written.update(written)
        self._durable.update(durable)
        self._saving_keys = set()

    def _snapshot(
        self, procs: dict[StateKey, Processor]
    ) -> tuple[list[Checkpoint], dict[StateKey, dict[str, int]]]:
        saved, written = [], {}
        for key, proc in procs.items():
            checkpoint, written[key] = self._checkpoint(key, proc)
            saved.append(checkpoint)
        return saved, written

    async def _save(self, procs: dict[StateKey, Processor]) -> None:
        """Checkpoint now, the stream waiting (every row the state reflects is stored)."""
        saved, written = self._snapshot(procs)
        durable = {tp: o for tp, o in self._handled.items() if self.state_key(*tp) in procs}
        await self._write_behind(None, saved, written, durable)
        for key in procs:
            self._unsaved.pop(key, None)
        self._last_saved = time.monotonic()

    def _checkpoint(self, key: StateKey, proc: Processor) -> tuple[Checkpoint, dict[str, int]]:
        """The head and the entities that changed since the last checkpoint (all of the
        state in the head for a processor without ``entity_maps``)."""
        maps: tuple[str, ...] = getattr(proc, "entity_maps", ())
        offset = proc.offset(key[0])
        if not maps:
            state = proc.dumps()
            CHECKPOINT_BYTES.labels(self.name, f"{key[0]}/{key[1]}").set(len(state))
            return Checkpoint(key[0], key[1], offset, state), {}
        head, entries = split(proc.state_root(), maps, proc.dumps)
        before = self._written.get(key, {})
        now = {k: hash(v) for k, v in entries.items()}
        changed: dict[str, bytes | None] = {
            k: v for k, v in entries.items() if before.get(k) != now[k]
        }
        changed.update(dict.fromkeys(before.keys() - now.keys()))
        size = len(head) + sum(len(v) for v in entries.values())
        CHECKPOINT_BYTES.labels(self.name, f"{key[0]}/{key[1]}").set(size)
        return Checkpoint(key[0], key[1], offset, head, changed), now

    def _update_lag(self, newest: dict[tuple[str, int], int]) -> None:
        if self.highwater is None:
            return
        for (topic, partition), offset in newest.items():
            hw = self.highwater(topic, partition)
            if hw is not None:
                CONSUMER_LAG.labels(topic, str(partition)).set(max(0, hw - offset - 1))
