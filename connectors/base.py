"""The source contract: a source yields batches of validated events for one topic."""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence

from pydantic import BaseModel

from connectors.publisher import KafkaPublisher
from connectors.tally import NothingUsable, Progress
from schemas.catalog import TopicSpec
from schemas.sources import ConnectorState

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The source cannot be read; ``retry_after`` says when trying again makes sense."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Source(ABC):
    name: str
    topic: TopicSpec
    finite: bool = False  # a replay of files: its progress is worth reporting as it goes

    @abstractmethod
    def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        """Yield batches of events; dead-letter unusable records through ``publisher``."""

    @abstractmethod
    def key(self, event: BaseModel) -> str:
        """The partitioning key of an event (the entity whose order matters)."""

    def emptiness(self) -> str:
        """What the input held instead of events, when a replay published none (for
        example the kinds of entity a feed carried); empty when there is nothing to add."""
        return ""


async def run_source(source: Source, publisher: KafkaPublisher, progress_s: float = 10.0) -> int:
    """Publish everything the source yields; return the number of events published.

    A replay shows a progress bar on a terminal and logs its progress every ``progress_s``
    elsewhere; it ends with one summary line (read, published, skipped and dead-lettered by
    reason) and raises :class:`NothingUsable` when it published nothing."""
    total = 0
    tally = publisher.tally
    progress = Progress(source.name) if source.finite else None
    started = last = time.monotonic()
    try:
        async for batch in source.batches(publisher):
            total += await publisher.publish(source.topic, batch, source.key)
            if progress is None:
                continue
            progress.update(tally)
            if not progress.on_terminal and (now := time.monotonic()) - last >= progress_s:
                last = now
                log.info(
                    "source progress",
                    extra={"connector": source.name, "events": total,
                           "events_per_s": round(total / (now - started), 1), **tally.fields()},
                )  # fmt: skip
    finally:
        if progress is not None:
            progress.close()
        # Also when the source failed: what was read up to then is part of the story.
        log.info(
            f"{source.name} finished: {tally.sentence()}",
            extra={"connector": source.name, "events": total, **tally.fields()},
        )
    publisher.state = ConnectorState.FINISHED
    if source.finite and total == 0:
        why = source.emptiness()
        raise NothingUsable(
            f"{source.name}: nothing usable was read ({tally.sentence()})"
            + (f"; {why}" if why else "")
        )
    return total


class TickSource(Source):
    """A simulator: a batch of events for every interval of simulated time, either paced
    by the wall clock or as fast as the broker takes them (replays, tests, benchmarks)."""

    interval_s: float
    start: float
    duration_s: float | None
    realtime: bool

    def _clock(
        self, interval_s: float, start: float | None, duration_s: float | None, realtime: bool
    ) -> None:
        self.interval_s = interval_s
        self.start = time.time() if start is None else start
        self.duration_s = duration_s
        self.realtime = realtime

    @abstractmethod
    def events_at(self, t: float) -> Sequence[BaseModel]:
        """The events of simulated time ``t`` (the clock advances by ``interval_s``)."""

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        t = self.start
        while self.duration_s is None or t - self.start < self.duration_s:
            if self.realtime and (delay := t - time.time()) > 0:
                await asyncio.sleep(delay)
            yield self.events_at(t)
            t += self.interval_s
            if not self.realtime:
                await asyncio.sleep(0)  # let consumers and timers of this process run
