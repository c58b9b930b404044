"""A processor for domains whose messages carry one event or an array of them, each
judged on its own: decode, apply item by item (a rejected item is dead-lettered alone),
record the offset. Domains implement ``apply`` (and may order items or act after them)."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec
from pydantic import BaseModel

from schemas.deadletter import Reason
from streams.alarm_engine import AlarmEngine
from streams.pipeline import Emitted, Message, processing_error
from streams.validation import Rejection, decode_many

E = TypeVar("E", bound=BaseModel)
log = logging.getLogger(__name__)


class ItemPartition(ABC, Generic[E]):
    model: type[E]
    state: Any  # a msgspec-encodable dataclass with an ``offset`` field
    alarms: AlarmEngine

    def offset(self, topic: str) -> int:
        return int(self.state.offset)

    def dumps(self) -> bytes:
        return msgspec.json.encode(self.state)

    def order(self, items: list[E]) -> list[E]:
        return items

    @abstractmethod
    def apply(self, item: E, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        """Apply one valid event; return a reason (and detail) to dead-letter it instead."""

    def after(self, applied: list[E], now: datetime, out: Emitted) -> None:
        """Work once per message, after its items (e.g. one summary row per entity)."""

    def tick(self, now: datetime, out: Emitted) -> bool:
        return False

    def skip(self, topic: str, offset: int) -> None:
        self.state.offset = offset

    def state_root(self) -> object:
        return self.state

    def handle(self, msg: Message, now: datetime, out: Emitted) -> tuple[int, list[Rejection]]:
        items, rejections = decode_many(msg.value, self.model)
        seen = len(items) + len(rejections)
        applied: list[E] = []
        for item in self.order(items):
            scratch = Emitted()
            try:
                problem = self.apply(item, now, scratch)
            except Exception as exc:
                # One item our code fails on is dead-lettered alone; its partial output is
                # dropped and the rest of the message, batch and worker go on.
                log.warning("item failed", exc_info=True, extra={"topic": msg.topic,
                            "partition": msg.partition, "offset": msg.offset})  # fmt: skip
                problem = (Reason.PROCESSING_ERROR, processing_error(exc))
            if problem is None:
                out.merge(scratch)
                applied.append(item)
            else:
                rejections.append(
                    Rejection(problem[0], problem[1], item.model_dump_json().encode())
                )
        self.after(applied, now, out)
        self.state.offset = msg.offset
        return seen, rejections
