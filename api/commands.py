"""Publishing to Kafka from the API: alarm commands and citizens' reports."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from schemas.alarms import AlarmCommand
from schemas.catalog import ALARM_COMMANDS


class KafkaEventPublisher:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def send(self, topic: str, key: str, value: bytes) -> None:
        """Return once the broker has the record."""
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
                await producer.start()
                self._producer = producer
        await self._producer.send_and_wait(topic, value, key=key.encode())

    async def __call__(self, command: AlarmCommand) -> None:
        await self.send(ALARM_COMMANDS.name, command.alarm_id, command.model_dump_json().encode())

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
