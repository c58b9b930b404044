"""Every worker reads every alarm command: the one that holds the alarm applies it.

Commands are few, and applying one twice is a no-op (ids are per episode, acknowledging
twice changes nothing), so each worker simply reads the whole topic from the start.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from schemas.alarms import AlarmCommand
from schemas.catalog import ALARM_COMMANDS
from streams.pipeline_types import Message

log = logging.getLogger(__name__)


async def consume_commands(
    bootstrap: str, apply: Callable[[list[AlarmCommand], list[Message]], Awaitable[None]]
) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(ALARM_COMMANDS.name) or {0}
        tps = [TopicPartition(ALARM_COMMANDS.name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            commands: list[AlarmCommand] = []
            origins: list[Message] = []
            for tp, records in batch.items():
                for rec in records:
                    try:
                        commands.append(AlarmCommand.model_validate_json(rec.value or b""))
                        origins.append(Message(tp.topic, tp.partition, rec.offset, rec.key,
                                               rec.value))  # fmt: skip
                    except ValidationError as exc:
                        log.warning(
                            "alarm command ignored",
                            extra={"offset": rec.offset, "error": str(exc)[:300]},
                        )
            if commands:
                await apply(commands, origins)
    finally:
        await consumer.stop()
