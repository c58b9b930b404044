"""Publishing events to Kafka in partition-sized batches.

One Kafka message per partition per batch: every event of a message hashes (by its key,
with Kafka's murmur2 partitioner) to that message's partition, so per-entity order and
placement are exactly those of one-event-per-message publishing, at a fraction of the
per-message cost downstream.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from pydantic import BaseModel

from connectors.metrics import LAST_EVENT, PUBLISHED, REJECTED
from schemas.catalog import DEAD_LETTER, TopicSpec

log = logging.getLogger(__name__)

MAX_EVENTS_PER_MESSAGE = 500


def partition_for(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def encode_batch(events: Sequence[BaseModel]) -> bytes:
    return b"[" + b",".join(e.model_dump_json(exclude_none=True).encode() for e in events) + b"]"


class KafkaPublisher:
    def __init__(self, bootstrap: str, connector: str) -> None:
        self.connector = connector
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            max_request_size=4 * 1024 * 1024,
            client_id=f"sitroom-{connector}",
        )
        self._partitions: dict[str, int] = {}

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def _partition_count(self, topic: str) -> int:
        if topic not in self._partitions:
            parts = await self._producer.partitions_for(topic)
            if not parts:
                raise RuntimeError(f"topic {topic} does not exist; run `sitroom topics create`")
            self._partitions[topic] = len(parts)
        return self._partitions[topic]

    async def publish(
        self, spec: TopicSpec, events: Sequence[BaseModel], key: Callable[[BaseModel], str]
    ) -> int:
        """Publish events grouped by partition; return once the broker has them all."""
        if not events:
            return 0
        n = await self._partition_count(spec.name)
        groups: dict[int, list[BaseModel]] = defaultdict(list)
        keys: dict[int, set[str]] = defaultdict(set)
        for event in events:
            k = key(event)
            p = partition_for(k, n)
            groups[p].append(event)
            keys[p].add(k)
        futures = []
        for p, group in groups.items():
            msg_key = next(iter(keys[p])).encode() if len(keys[p]) == 1 else None
            for i in range(0, len(group), MAX_EVENTS_PER_MESSAGE):
                chunk = group[i : i + MAX_EVENTS_PER_MESSAGE]
                futures.append(
                    await self._producer.send(
                        spec.name, encode_batch(chunk), key=msg_key, partition=p
                    )
                )
        for fut in futures:
            await fut
        PUBLISHED.labels(self.connector, spec.name).inc(len(events))
        LAST_EVENT.labels(self.connector).set(time.time())
        return len(events)

    async def dead_letter(self, raw: bytes, reason: str, detail: str, source: str) -> None:
        """A source record that is not a valid event: keep its bytes and why."""
        REJECTED.labels(self.connector, reason).inc()
        log.warning(
            "source record dead-lettered",
            extra={
                "connector": self.connector,
                "reason": reason,
                "detail": detail[:300],
                "source": source,
            },
        )
        headers = [
            ("reason", reason.encode()),
            ("detail", detail.encode()[:2000]),
            ("source.connector", self.connector.encode()),
            ("source.location", source.encode()),
        ]
        await self._producer.send_and_wait(DEAD_LETTER.name, raw, headers=headers)
