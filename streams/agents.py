"""Faust wiring: a domain pipeline's topics → its agent (or, for high-rate topics, the
batch consumer), plus its timer. No logic here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import faust
from faust.types import TP

from schemas.catalog import TopicSpec
from schemas.settings import Settings
from streams.batch_consumer import BatchConsumer
from streams.pipeline import Message, Pipeline

log = logging.getLogger(__name__)


class FaustProducer:
    """The pipeline's producer contract on top of faust's producer."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Awaitable[object]:
        return await self.app.producer.send(topic, key, value, None, None, headers)


def consumer_highwater(app: faust.App) -> Callable[[str, int], int | None]:
    def highwater(topic: str, partition: int) -> int | None:
        try:
            return int(app.consumer.highwater(TP(topic, partition)))
        except Exception:  # not assigned yet, or no fetch yet
            return None

    return highwater


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    items = raw.items() if isinstance(raw, Mapping) else (raw or ())
    return tuple((str(k), bytes(v or b"")) for k, v in items)


def register_pipeline(
    app: faust.App,
    settings: Settings,
    pipeline: Pipeline,
    specs: Sequence[TopicSpec],
    tick_interval_s: float,
    batch: BatchConsumer | None = None,
) -> None:
    async def tick() -> None:
        try:
            await pipeline.tick()
        except Exception as exc:
            log.exception("tick failed; stopping the worker", extra={"pipeline": pipeline.name})
            await app.crash(exc)

    app.timer(interval=tick_interval_s, name=f"{pipeline.name}-tick")(tick)
    if batch is not None and any(s.high_rate for s in specs):
        batch.add(pipeline, specs)
        return

    topic = app.topic(
        *(s.name for s in specs),
        key_serializer="raw",
        value_serializer="raw",
    )

    async def consume(stream: Any) -> None:
        # take_events acknowledges a batch only after this body returns, i.e. after
        # handle_batch has stored its rows and checkpoint.
        async for events in stream.take_events(
            settings.sink_batch_messages, within=settings.sink_max_delay_s
        ):
            batch = [
                Message(m.topic, m.partition, m.offset, m.key, m.value, _headers(m.headers))
                for m in (e.message for e in events)
            ]
            try:
                await pipeline.handle_batch(batch)
            except Exception as exc:
                # faust's take_events acks the batch in a `finally` even when this body
                # raises, so a commit before the worker stops would move past messages that
                # were never stored. Marked acked, its ack becomes a no-op and the offsets stay.
                for event in events:
                    event.message.acked = True
                # Restarting only the agent would move past this batch's messages with
                # state that never saw them; crash the worker so a restart replays from the
                # committed offsets and the last checkpoint.
                log.exception(
                    "batch failed; stopping the worker",
                    extra={"pipeline": pipeline.name, "messages": len(batch)},
                )
                await app.crash(exc)
                raise

    app.agent(topic, name=f"{pipeline.name}-agent")(consume)

    names = {s.name for s in specs}

    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        await pipeline.release((tp.topic, tp.partition) for tp in revoked if tp.topic in names)

    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        try:
            await pipeline.assign((tp.topic, tp.partition) for tp in assigned if tp.topic in names)
        except Exception as exc:
            log.exception(
                "loading state failed; stopping the worker", extra={"pipeline": pipeline.name}
            )
            await app.crash(exc)

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
