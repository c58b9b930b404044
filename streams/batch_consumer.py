"""High-rate topics consumed in batches inside the faust app, off faust's stream path.

faust's per-message path costs ~100-180 µs per message (tasks, a wait and cancellations
per message; see ARCHITECTURE.md), which caps a worker at a few thousand events/s when
producers send one event per message, as most do. This service runs an aiokafka consumer
in the app's own event loop (no consumer thread contending for the GIL), takes what
``getmany`` has fetched, hands each pipeline its messages as one batch, and commits only
offsets whose effects are in ClickHouse and in a checkpoint: the same at-least-once
contract as the agents. Rows are written with every batch; state is checkpointed at most
every ``checkpoint_interval_s`` (a crash replays the rest, and the replay writes the same
rows). A rebalance waits for the batch in flight, then hands state over: revoked
partitions' state is checkpointed, committed and released; assigned partitions' loaded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError
from mode import Service

from schemas.catalog import TopicSpec
from schemas.settings import Settings
from streams.pipeline import Message, Pipeline

log = logging.getLogger(__name__)
STOP_WAIT_S = 5.0


def _size(records: list[Any]) -> int:
    """About the bytes of a run of one partition's records (they are alike): a bound for
    memory, not worth a pass over every record on the hot path."""
    return len(records) * max(len(records[0].value or b""), len(records[-1].value or b""))


def batch_group(app_id: str) -> str:
    """The consumer group of a worker's high-rate topics (faust's own group is ``app_id``)."""
    return f"{app_id}.batch"


class BatchConsumer(Service):
    """One consumer (group ``<app_id>.batch``) for every high-rate pipeline of a worker."""

    def __init__(self, app: faust.App, settings: Settings, bootstrap: str, **kwargs: Any) -> None:
        self.app = app
        self.settings = settings
        self.bootstrap = bootstrap
        self.routes: dict[str, Pipeline] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._assigned: set[TopicPartition] = set()
        self._committed: dict[TopicPartition, int] = {}
        # Held for a whole batch and by the rebalance listener: state never changes hands
        # while a batch that touches it is in flight.
        self._handover = asyncio.Lock()
        super().__init__(**kwargs)

    @property
    def group_id(self) -> str:
        return batch_group(self.settings.app_id)

    def add(self, pipeline: Pipeline, specs: Sequence[TopicSpec]) -> None:
        for spec in specs:
            self.routes[spec.name] = pipeline
        pipeline.highwater = self.highwater
        pipeline.checkpoint_every_s = self.settings.checkpoint_interval_s
        pipeline.overlap_flush = True

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def highwater(self, topic: str, partition: int) -> int | None:
        if self.consumer is None:
            return None
        try:
            hw = self.consumer.highwater(TopicPartition(topic, partition))
        except (IllegalStateError, AssertionError):  # not assigned (any more)
            return None
        return None if hw is None else int(hw)

    async def on_start(self) -> None:
        if not self.routes:
            return
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # As the faust app's: tansu answers JoinGroup after half the session timeout.
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            max_partition_fetch_bytes=8 << 20,
            fetch_max_bytes=64 << 20,
            # Range assigns partition N of every topic to the same member: a pipeline whose
            # state spans topics (flood: gauges and reports under one key) is never split.
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        await self.consumer.start()
        self.consumer.subscribe(sorted(self.routes), listener=_Handover(self))
        self.add_future(self._run())
        log.info(
            "batch consumer started",
            extra={"group": self.group_id, "topics": sorted(self.routes)},
        )

    async def on_stop(self) -> None:
        if self.consumer is None:
            return
        try:
            async with self._handover:
                for pipeline in self.pipelines():
                    await pipeline.save_now()
                # Bounded: a commit to a broker that is gone (an outage, a broker killed
                # with us) would wait for its request timeout.
                await asyncio.wait_for(self._commit_durable(self._assigned), STOP_WAIT_S)
        except Exception:
            # Stopping after a failure: what is not committed replays after the restart.
            log.warning("state not saved or offsets not committed at stop", exc_info=True)
        consumer, self.consumer = self.consumer, None
        try:
            await asyncio.wait_for(consumer.stop(), STOP_WAIT_S)
        except TimeoutError:
            log.warning("batch consumer did not leave its group in time (broker gone?)")

    def pipelines(self) -> list[Pipeline]:
        return list({id(p): p for p in self.routes.values()}.values())

    async def _run(self) -> None:
        try:
            while not self.should_stop and self.consumer is not None:
                fetched = await self._gather(self.consumer)
                if fetched:
                    await self.handle(fetched)
                else:
                    # A tick may have checkpointed since the last batch.
                    async with self._handover:
                        await self._commit_durable(self._assigned)
        except asyncio.CancelledError:
            raise
        except ConsumerStoppedError:
            if self.consumer is None or self.should_stop:
                return  # stopping: on_stop saved what was handled and left the group
            raise
        except Exception as exc:
            if self.consumer is None or self.should_stop or self.app.should_stop:
                # Stopping while a batch was in flight: the services it writes through
                # (faust's producer) may already be gone. Nothing of it is committed, so the
                # next start replays it from the checkpoint; not an error worth a trace.
                log.info("batch interrupted by the stop; it replays at the next start",
                         extra={"group": self.group_id, "error": type(exc).__name__})  # fmt: skip
                return
            # A failed batch is not committed; crash the worker so a restart replays it
            # from the committed offsets and the last checkpoint (as the agents do).
            log.exception("batch failed; stopping the worker", extra={"group": self.group_id})
            await self.app.crash(exc)

    async def _gather(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[Any]]:
        """What is fetched now, plus what arrives within ``batch_gather_s``, up to
        ``batch_max_bytes``: aiokafka prefetches in the background while this waits."""
        loop = asyncio.get_running_loop()
        most = self.settings.batch_max_messages
        fetched: dict[TopicPartition, list[Any]] = await consumer.getmany(
            timeout_ms=500, max_records=most
        )
        if not fetched:
            return fetched
        count = sum(len(records) for records in fetched.values())
        size = sum(_size(records) for records in fetched.values())
        deadline = loop.time() + self.settings.batch_gather_s
        while size < self.settings.batch_max_bytes and count < most:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            more = await consumer.getmany(
                timeout_ms=max(1, int(remaining * 1000)), max_records=most - count
            )
            for tp, records in more.items():
                fetched.setdefault(tp, []).extend(records)
                count += len(records)
                size += _size(records)
        return fetched

    async def handle(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        async with self._handover:
            batches: dict[int, tuple[Pipeline, list[Message]]] = {}
            for tp, records in fetched.items():
                if tp not in self._assigned or not records:
                    continue  # revoked while we waited: its new owner reads it
                pipeline = self.routes[tp.topic]
                messages = batches.setdefault(id(pipeline), (pipeline, []))[1]
                topic, partition = tp.topic, tp.partition
                messages.extend(
                    Message(topic, partition, r.offset, r.key, r.value, tuple(r.headers or ()))
                    for r in records
                )
            for pipeline, messages in batches.values():
                await pipeline.handle_batch(messages)
            await self._commit_durable(self._assigned)

    async def _commit_durable(self, partitions: set[TopicPartition]) -> None:
        """Commit, for ``partitions``, what the pipelines have checkpointed."""
        offsets: dict[TopicPartition, int] = {}
        for pipeline in self.pipelines():
            for (topic, partition), offset in pipeline.durable_offsets().items():
                tp = TopicPartition(topic, partition)
                if tp in partitions and self._committed.get(tp) != offset:
                    offsets[tp] = offset
        if not offsets or self.consumer is None:
            return
        try:
            await self.consumer.commit(offsets)
            self._committed.update(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partitions: the new owner replays from the last
            # committed offset and skips what the checkpoint already holds.
            log.info("offsets not committed (rebalance)", extra={"error": str(exc)[:200]})
        except KafkaError as exc:
            log.warning("offset commit failed", extra={"error": str(exc)[:200]})

    async def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        async with self._handover:
            gone = set(partitions)
            for pipeline, parts in self._by_pipeline(gone):
                await pipeline.release(parts)  # checkpoints what it has not yet
            # Their next owner starts where this one's checkpoint ends.
            await self._commit_durable(gone)
            self._assigned -= gone
            for pipeline, parts in self._by_pipeline(gone):
                pipeline.forget_offsets(parts)
            for tp in gone:
                self._committed.pop(tp, None)

    async def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        async with self._handover:
            new = set(partitions)
            self._assigned |= new
            for pipeline, parts in self._by_pipeline(new):
                await pipeline.assign(parts)

    def _by_pipeline(
        self, partitions: set[TopicPartition]
    ) -> list[tuple[Pipeline, list[tuple[str, int]]]]:
        groups: dict[int, tuple[Pipeline, list[tuple[str, int]]]] = {}
        for tp in sorted(partitions):
            pipeline = self.routes.get(tp.topic)
            if pipeline is not None:
                groups.setdefault(id(pipeline), (pipeline, []))[1].append((tp.topic, tp.partition))
        return list(groups.values())


class _Handover(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: BatchConsumer) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.service.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self.service.assigned(assigned)
        except Exception as exc:
            log.exception("loading state failed; stopping the worker")
            await self.service.app.crash(exc)
