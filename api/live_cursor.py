"""Where a live (SSE) client stands in its stream, written into every event id, so that a
client reconnecting with ``Last-Event-ID`` is resumed from Kafka without losing or
repeating an event.

An id is ``topic:partition:offset:item~o0.o1...``: the record and item this event came
from, then, for every partition of the stream (sorted by topic and partition), the first
offset not yet delivered in full. The event's own record counts as not delivered in full
(its later items may follow), so a resume seeks there and skips its items up to ``item``.
The event a stream opens with has positions only (``~o0.o1...``): a client that loses the
connection before any item arrives still resumes from where it started. The topics keep
the history: nothing is held in the API process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TP = tuple[str, int]  # topic, partition


class UnreadableEventId(ValueError):
    """A Last-Event-ID this API did not write (or wrote for another stream)."""


@dataclass(frozen=True)
class EventId:
    positions: tuple[int, ...]
    record: tuple[TP, int, int] | None = None  # partition, offset, item of this event


def format_event_id(record: tuple[TP, int, int] | None, positions: Sequence[int]) -> str:
    head = f"{record[0][0]}:{record[0][1]}:{record[1]}:{record[2]}" if record else ""
    return f"{head}~{'.'.join(map(str, positions))}"


def parse_event_id(text: str) -> EventId:
    head, sep, tail = text.strip().partition("~")
    if not sep:
        raise UnreadableEventId(f"{text[:80]!r} is not an event id of this API")
    try:
        positions = tuple(int(p) for p in tail.split(".")) if tail else ()
        record = None
        if head:
            topic, partition, offset, item = head.rsplit(":", 3)
            record = ((topic, int(partition)), int(offset), int(item))
    except ValueError:
        raise UnreadableEventId(f"{text[:80]!r} is not an event id of this API") from None
    numbers = (*positions, *(record[0][1], record[1], record[2])) if record else positions
    if min(numbers, default=0) < 0:
        raise UnreadableEventId(f"{text[:80]!r} holds a negative offset")
    return EventId(positions, record)


@dataclass
class ResumePlan:
    """Where each partition starts, which items of one record were already delivered, and
    what the client must be told it missed (it then reloads what it shows)."""

    seek: dict[TP, int]
    delivered: tuple[TP, int, int] | None = None  # partition, offset, items 0..n delivered
    gaps: list[str] = field(default_factory=list)


def plan_resume(
    partitions: Sequence[TP],
    last: EventId,
    earliest: Mapping[TP, int],
    latest: Mapping[TP, int],
    max_records: int,
) -> ResumePlan:
    """Seek positions for a client that last saw ``last``. At most ``max_records`` per
    partition are replayed (a client back after a day reloads rather than replays); a
    partition whose records expired starts at its earliest. Each shortfall is named in
    ``gaps``."""
    tps = sorted(partitions)
    own = last.record[0] if last.record else None
    if len(last.positions) != len(tps) or (own is not None and own not in tps):
        # The stream's topics changed (or the id is another stream's): nothing to resume.
        return ResumePlan(
            seek=dict(latest),
            gaps=["the stream's partitions changed since that event id; starting from now"],
        )
    plan = ResumePlan(seek={})
    for tp, wanted in zip(tps, last.positions, strict=True):
        start = max(wanted, earliest.get(tp, 0), latest.get(tp, 0) - max_records)
        start = min(start, latest.get(tp, 0))
        if start > wanted:
            plan.gaps.append(f"{start - wanted} record(s) of {tp[0]}/{tp[1]} not replayed")
        plan.seek[tp] = start
    if last.record and own is not None and plan.seek[own] == last.record[1]:
        plan.delivered = (own, last.record[1], last.record[2])
    return plan


class Positions:
    """The stream's delivery positions as records are sent; makes each event's id."""

    def __init__(self, start: Mapping[TP, int]) -> None:
        self._tps = sorted(start)
        self._next = dict(start)

    def event_id(self, tp: TP, offset: int, item: int) -> str:
        positions = [offset if p == tp else self._next[p] for p in self._tps]
        return format_event_id((tp, offset, item), positions)

    def opening_id(self) -> str:
        return format_event_id(None, [self._next[p] for p in self._tps])

    def done(self, tp: TP, offset: int) -> None:
        """The whole record at ``offset`` was delivered (or held nothing to deliver)."""
        self._next[tp] = offset + 1
