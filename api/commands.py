"""Publishing alarm commands (acknowledge, clear) for the workers to apply."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from schemas.alarms import AlarmCommand
from schemas.catalog import ALARM_COMMANDS


class KafkaCommandPublisher:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, command: AlarmCommand) -> None:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
                await producer.start()
                self._producer = producer
        await self._producer.send_and_wait(
            ALARM_COMMANDS.name, command.model_dump_json().encode(), key=command.alarm_id.encode()
        )

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
