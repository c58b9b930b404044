"""Tumbling windows closed by event time, not by the wall clock.

The watermark is the largest event time seen minus the allowed lateness; a window closes
when the watermark passes its end. Replaying a feed from the start therefore closes every
window exactly as the live run did. Events for a window that is already closed are late:
the caller counts them instead of reopening a row that was already written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

A = TypeVar("A")


@dataclass
class WindowClock:
    size_s: int = 60
    lateness_s: float = 10.0
    max_ts: float | None = None
    # Every window starting before this has been closed (and emitted).
    closed_before: int = 0

    def start_of(self, ts: float) -> int:
        return int(ts // self.size_s) * self.size_s

    def is_late(self, ts: float) -> bool:
        return self.start_of(ts) < self.closed_before

    def observe(self, ts: float) -> None:
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts

    def closable_before(self, force: bool = False) -> int:
        """Windows starting before the returned time may be closed now."""
        if self.max_ts is None:
            return self.closed_before
        if force:
            return self.start_of(self.max_ts) + self.size_s
        watermark = self.max_ts - self.lateness_s
        # [s, s + size) has ended once s + size <= watermark, i.e. s < start_of(watermark).
        return max(self.closed_before, self.start_of(watermark))


@dataclass
class Windows(Generic[A]):
    """Open windows of many keys: ``{window_start: {key: accumulator}}``."""

    open: dict[int, dict[str, A]] = field(default_factory=dict)

    def get(self, start: int, key: str, factory: Callable[[], A]) -> A:
        bucket = self.open.setdefault(start, {})
        acc = bucket.get(key)
        if acc is None:
            acc = bucket[key] = factory()
        return acc

    def pop_before(self, limit: int) -> list[tuple[int, str, A]]:
        out: list[tuple[int, str, A]] = []
        for start in sorted(s for s in self.open if s < limit):
            for key, acc in self.open.pop(start).items():
                out.append((start, key, acc))
        return out
