"""Event time per entity: its clock, a reorder buffer, and tumbling windows that close on
that clock and can be corrected afterwards.

Every domain keys these by its entity (vehicle, segment, station, truck), never by Kafka
partition: what one entity's windows hold must not depend on how other entities' events
interleave with its own, on how messages are batched, or on a crash in between.

* **Clock.** An entity's clock is the newest event time it has sent, advanced by the wall
  time that has passed since it was seen (bytewax's event clock does the same). A quiet
  entity's windows therefore close once the wall time since its last event passes the
  window end plus the lateness, and never earlier.
* **Watermark** = clock - lateness. Events up to the lateness behind the clock are exact:
  buffered, released in event-time order, windowed as if they had arrived in order.
* **Corrections.** A closed window is kept until the watermark passes its end plus the
  correction horizon. A late event inside that horizon is added to it and the window is
  emitted again with a higher version (the number of distinct events it holds, which
  only grows, so ``ReplacingMergeTree(version)`` converges on the complete row however a
  crash or replay split the work). Beyond the horizon the event is ``LATE``: the caller
  counts it and dead-letters it.
* **Duplicates.** Each window remembers the ids (offsets in ms from its start) of the
  events it holds; a repeat is recognised and changes nothing.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from math import inf
from typing import Generic, TypeVar

import msgspec

A = TypeVar("A")
T = TypeVar("T")


class Placement(StrEnum):
    OPEN = "open"  # into a window still open
    CORRECTION = "correction"  # into a closed window inside the correction horizon
    DUPLICATE = "duplicate"  # this event is already in its window
    LATE = "late"  # its window is past the correction horizon


class EntityClock(msgspec.Struct, array_like=True, gc=False):
    # Array-like structs: state of thousands of entities is checkpointed every batch, and
    # field names would be most of its bytes. gc=False (here and on the other leaf structs of
    # entity state: they hold no references back): the collector need not walk them.
    max_ts: float | None = None  # newest event time seen
    seen_at: float = 0.0  # wall time when max_ts last advanced

    def observe(self, ts: float, wall: float) -> None:
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts, self.seen_at = ts, wall

    def now(self, wall: float) -> float | None:
        """The entity's event time now: its newest event plus the quiet time since."""
        if self.max_ts is None:
            return None
        return self.max_ts + max(0.0, wall - self.seen_at)

    def idle_s(self, wall: float) -> float:
        return max(0.0, wall - self.seen_at) if self.max_ts is not None else 0.0


def settled_until(max_ts: float | None, seen_at: float, arrived_at: float, wall: float,
                  lateness_s: float) -> float:  # fmt: skip
    """Up to this time every event of an entity with a life of few, irregular events (a
    report, a tender) has arrived: its clock less the lateness; and once nothing has come
    for the lateness, the wall time less the lateness too. So a burst replaying whole
    histories is judged in their own time, and an import of old, still open items against
    today rather than their old time."""
    settled = -inf if max_ts is None else max_ts + max(0.0, wall - seen_at) - lateness_s
    if wall - arrived_at >= lateness_s:
        settled = max(settled, wall - lateness_s)
    return settled


class ArrivalClock(msgspec.Struct):
    """The clock :func:`settled_until` reads, for an entity kept whole (a city's prices, a
    connector's heartbeats): its newest event time, and when anything last arrived."""

    max_ts: float | None = None  # newest event time seen (None: nothing yet)
    seen_at: float = 0.0  # wall time at which max_ts last advanced
    arrived_at: float = 0.0  # wall time of the last event, older or newer

    def arrive(self, ts: float, wall: float) -> None:
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts, self.seen_at = ts, wall
        self.arrived_at = wall

    def settled(self, wall: float, lateness_s: float) -> float:
        return settled_until(self.max_ts, self.seen_at, self.arrived_at, wall, lateness_s)


class Slot(msgspec.Struct, Generic[A], array_like=True, gc=False):
    acc: A
    ids: list[int] = msgspec.field(default_factory=list)  # ms after the window start
    emitted: int = 0  # len(ids) when the window was last emitted

    @property
    def version(self) -> int:
        return len(self.ids)


class EntityWindows(msgspec.Struct, Generic[A], array_like=True):
    """One entity's open windows and the closed ones still open to corrections."""

    clock: EntityClock = msgspec.field(default_factory=EntityClock)
    open: dict[int, Slot[A]] = msgspec.field(default_factory=dict)
    closed: dict[int, Slot[A]] = msgspec.field(default_factory=dict)
    closed_before: int | None = None  # every window starting before this has closed
    corrected: list[int] = msgspec.field(default_factory=list)  # closed, to emit again

    def is_empty(self) -> bool:
        return not self.open and not self.closed


@dataclass(frozen=True)
class WindowPolicy:
    size_s: int
    lateness_s: float = 10.0
    horizon_s: float = 300.0

    def start_of(self, ts: float) -> int:
        return int(ts // self.size_s) * self.size_s

    def watermark(self, clock: EntityClock, wall: float) -> float | None:
        now = clock.now(wall)
        return None if now is None else now - self.lateness_s

    def place(
        self, w: EntityWindows[A], ts: float, wall: float, factory: Callable[[], A]
    ) -> tuple[Placement, Slot[A] | None]:
        """Find (or open) the window of an event at ``ts`` and record the event in it."""
        start = self.start_of(ts)  # a policy may shift its windows (a local day)
        event_id = round((ts - start) * 1000)
        if w.closed_before is not None and start < w.closed_before:
            wm = self.watermark(w.clock, wall)
            if wm is not None and start + self.size_s + self.horizon_s <= wm:
                return Placement.LATE, None
            slot = w.closed.get(start)
            if slot is None:
                # A window that closed without events; inside the horizon it still counts.
                slot = w.closed[start] = Slot(factory())
            if event_id in slot.ids:
                return Placement.DUPLICATE, None
            slot.ids.append(event_id)
            if start not in w.corrected:
                w.corrected.append(start)
            return Placement.CORRECTION, slot
        slot = w.open.get(start)
        if slot is None:
            slot = w.open[start] = Slot(factory())
        elif event_id in slot.ids:
            return Placement.DUPLICATE, None
        slot.ids.append(event_id)
        clock = w.clock
        if clock.max_ts is None or ts > clock.max_ts:  # EntityClock.observe, inline
            clock.max_ts, clock.seen_at = ts, wall
        return Placement.OPEN, slot

    def place_released(
        self, w: EntityWindows[A], events: list[tuple[float, T]], wall: float,
        factory: Callable[[], A],
    ) -> list[Slot[A] | None]:  # fmt: skip
        """:meth:`place` for events a :class:`Reorder` released (``(ts, item)``, oldest
        first): the window each went into, None for a duplicate or a late one. Released
        events almost always fall in open windows; that case is taken here without a call
        per event (the hottest loop of a bus feed), the rest by :meth:`place`."""
        own_start = type(self).start_of is WindowPolicy.start_of
        size, open_, clock = self.size_s, w.open, w.clock
        slots: list[Slot[A] | None] = []
        for ts, _ in events:
            start = int(ts // size) * size if own_start else self.start_of(ts)
            if w.closed_before is not None and start < w.closed_before:
                slots.append(self.place(w, ts, wall, factory)[1])
                continue
            # From here, place's open-window case.
            event_id = round((ts - start) * 1000)
            slot = open_.get(start)
            if slot is None:
                slot = open_[start] = Slot(factory())
            elif event_id in slot.ids:
                slots.append(None)
                continue
            slot.ids.append(event_id)
            if clock.max_ts is None or ts > clock.max_ts:
                clock.max_ts, clock.seen_at = ts, wall
            slots.append(slot)
        return slots

    def due(
        self, w: EntityWindows[A], wall: float, force: bool = False
    ) -> list[tuple[int, Slot[A]]]:
        """Close the windows the watermark has passed (all open ones when ``force``) and
        return every window to emit now: newly closed ones and corrected ones. Closed
        windows past the correction horizon are forgotten."""
        return self.due_at(w, self.watermark(w.clock, wall), force)

    def due_at(
        self, w: EntityWindows[A], wm: float | None, force: bool = False
    ) -> list[tuple[int, Slot[A]]]:
        """:meth:`due` at a watermark the caller has already computed."""
        if wm is None:
            return []
        limit = self.start_of(wm)
        if force and w.open:
            limit = max(limit, max(w.open) + self.size_s)
        if w.closed_before is not None and limit <= w.closed_before and not w.corrected:
            return []  # the common case, once per event: nothing to close or re-emit
        out = []
        for start in sorted(s for s in w.open if s < limit):
            slot = w.closed[start] = w.open.pop(start)
            slot.emitted = len(slot.ids)
            out.append((start, slot))
        for start in sorted(w.corrected):
            slot = w.closed[start]
            if slot.emitted != len(slot.ids):
                slot.emitted = len(slot.ids)
                out.append((start, slot))
        w.corrected.clear()
        if w.closed_before is None or limit > w.closed_before:
            w.closed_before = limit
            # Forgotten on the window boundary the watermark is in, not on the watermark
            # itself: every step of a run of events then forgets the same windows, however
            # the run was split (one advance per event, or one per run). Until then a
            # window past the horizon is still refused as late by place.
            mark = self.start_of(wm)
            for start in [s for s in w.closed if s + self.size_s + self.horizon_s <= mark]:
                del w.closed[start]
        return out


class Reorder(msgspec.Struct, Generic[T], array_like=True):
    """Events of one entity held until its watermark passes them, then released in
    event-time order, so logic that depends on the previous event (speed, distance, rise)
    sees the same sequence whatever order the feed delivered."""

    pending: list[tuple[float, T]] = msgspec.field(default_factory=list)  # sorted by time
    released_until: float | None = None  # the watermark of the last release

    def is_late(self, ts: float) -> bool:
        """Behind the watermark already released: it can no longer be put in order."""
        return self.released_until is not None and ts < self.released_until

    def add(self, ts: float, item: T) -> bool:
        """Hold an event; False when one with the same time is already held."""
        pending = self.pending
        if not pending or ts > pending[-1][0]:
            pending.append((ts, item))  # the common case: in order
            return True
        i = bisect.bisect_left(self.pending, ts, key=lambda p: p[0])
        if i < len(self.pending) and self.pending[i][0] == ts:
            return False
        self.pending.insert(i, (ts, item))
        return True

    def extend(self, events: list[tuple[float, T]]) -> None:
        """Hold events that are all newer than every one held, oldest first (a feed in
        order): what :meth:`add` does for each of them, at once."""
        if events and self.pending and events[0][0] <= self.pending[-1][0]:
            raise ValueError("Reorder.extend: events older than the newest held")
        self.pending.extend(events)

    def release(self, watermark: float | None, force: bool = False) -> list[tuple[float, T]]:
        """The held events before ``watermark`` (all when ``force``), oldest first."""
        pending = self.pending
        if force:
            self.pending = []
            top = pending[-1][0] if pending else None
            if watermark is not None and (top is None or watermark > top):
                top = watermark
            if top is not None and (self.released_until is None or top > self.released_until):
                self.released_until = top
            return pending
        if watermark is None:
            return []
        if self.released_until is None or watermark > self.released_until:
            self.released_until = watermark  # every event released is behind it
        if not pending or pending[0][0] >= watermark:
            return []  # the common case, once per event: nothing to release yet
        n = 1
        while n < len(pending) and pending[n][0] < watermark:
            n += 1  # few are held: a scan beats a bisect here
        released = pending[:n]
        del pending[:n]
        return released


def resume_clocks(state: object, wall: float) -> None:
    """Restart every entity clock in restored state at ``wall``: while no worker held the
    state (a crash, a rebalance), its entities were not quiet, their events were waiting
    in Kafka. Counting that time as idle would close windows and release held events
    ahead of the events still to be read."""
    stack = [state]
    while stack:
        obj = stack.pop()
        if isinstance(obj, EntityClock):
            obj.seen_at = max(obj.seen_at, wall)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple):
            stack.extend(obj)
        elif isinstance(obj, msgspec.Struct):
            stack.extend(getattr(obj, f) for f in obj.__struct_fields__)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
