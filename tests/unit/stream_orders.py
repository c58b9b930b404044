"""Adversarial arrival orders for property tests of stream logic.

Real feeds are not the simulators: events of one entity arrive out of order (within the
allowed lateness), entities interleave arbitrarily, batches split anywhere, workers crash
and restore state mid-stream, messages repeat, and old replays run beside live sources.
Each helper turns an in-order list of ``(entity, ts, event)`` into one such arrival order;
a domain's logic must give the same rows (last version per key) for all of them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

E = TypeVar("E")
Timed = tuple[str, float, E]  # (entity, event time, event)


def shuffled_within_lateness(
    rng: random.Random, events: Sequence[Timed[E]], lateness_s: float
) -> list[Timed[E]]:
    """Each entity's events delayed by up to ``lateness_s`` and entities interleaved at
    random, such that no event arrives more than the lateness behind its entity's newest."""
    keyed = []
    for entity, ts, ev in events:
        keyed.append((ts + rng.uniform(0, lateness_s), rng.random(), (entity, ts, ev)))
    keyed.sort(key=lambda k: (k[0], k[1]))
    out: list[Timed[E]] = []
    newest: dict[str, float] = {}
    for _, _, item in keyed:
        # Arrival at ts + delay <= ts + lateness, so newest - ts <= lateness always holds.
        entity, ts, _ = item
        assert newest.get(entity, ts) - ts <= lateness_s + 1e-6
        newest[entity] = max(newest.get(entity, ts), ts)
        out.append(item)
    return out


def interleaved(
    rng: random.Random, first: Sequence[Timed[E]], second: Sequence[Timed[E]]
) -> list[Timed[E]]:
    """Two sources merged at random, each keeping its own order."""
    a, b, out = list(first)[::-1], list(second)[::-1], []
    while a or b:
        take_first = bool(a) and (not b or rng.random() < len(a) / (len(a) + len(b)))
        out.append(a.pop() if take_first else b.pop())
    return out


def with_duplicates(rng: random.Random, events: Sequence[Timed[E]]) -> list[Timed[E]]:
    """Some events delivered again, right away or a little later (at-least-once redelivery)."""
    out: list[Timed[E]] = list(events)
    for item in events:
        if rng.random() < 0.1:
            at = out.index(item) + 1 + rng.randint(0, 5)
            out.insert(min(at, len(out)), item)
    return out


def batches(rng: random.Random, events: Sequence[E]) -> list[list[E]]:
    """Split anywhere into consecutive batches."""
    out: list[list[E]] = []
    i = 0
    while i < len(events):
        n = rng.randint(1, max(1, len(events) // 3))
        out.append(list(events[i : i + n]))
        i += n
    return out


def last_versions(
    rows: Iterable[Sequence[Any]],
    key: Callable[[Sequence[Any]], Hashable],
    version: Callable[[Sequence[Any]], Any] | None = None,
) -> dict[Hashable, tuple[Any, ...]]:
    """What ReplacingMergeTree ... FINAL shows: per key the highest version, ties to the
    row inserted last."""
    kept: dict[Hashable, tuple[Any, Sequence[Any]]] = {}
    for row in rows:
        k, v = key(row), (version(row) if version else 0)
        if k not in kept or v >= kept[k][0]:
            kept[k] = (v, row)
    return {k: tuple(r) for k, (_, r) in kept.items()}
