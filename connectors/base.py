"""The source contract: a source yields batches of validated events for one topic."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence

from pydantic import BaseModel

from connectors.publisher import KafkaPublisher
from schemas.catalog import TopicSpec

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The source cannot be read; ``retry_after`` says when trying again makes sense."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Source(ABC):
    name: str
    topic: TopicSpec

    @abstractmethod
    def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        """Yield batches of events; dead-letter unusable records through ``publisher``."""

    @abstractmethod
    def key(self, event: BaseModel) -> str:
        """The partitioning key of an event (the entity whose order matters)."""


async def run_source(source: Source, publisher: KafkaPublisher) -> int:
    """Publish everything the source yields; return the number of events published."""
    total = 0
    async for batch in source.batches(publisher):
        total += await publisher.publish(source.topic, batch, source.key)
    log.info("source finished", extra={"connector": source.name, "events": total})
    return total
