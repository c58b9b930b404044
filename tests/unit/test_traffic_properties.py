"""Traffic windows do not depend on arrival order, batching, restarts, duplicates or an older
source next to a live one (issue 8).

A stream of readings (several segments, one about every 60 s) is processed five ways, and
every way must leave the same rows in a ReplacingMergeTree (the highest version of each
(segment, window), ties to the last inserted) and the same alarms. The wall clock is held
still while feeding, then moves far ahead so every window closes.

Counts, speeds and occupancies are whole numbers: sums of them are exact in any order, so
rows can be compared exactly.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alarm_rules import load_rules
from schemas.alarms import Alarm
from schemas.settings import Settings
from schemas.spatial import gazetteer
from schemas.traffic import SegmentRegistry, load_segments
from streams.pipeline import Emitted, Message
from streams.traffic_logic import TrafficPartition

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
LATENESS = int(SETTINGS.window_allowed_lateness_s)
BASE = 1_780_000_200  # on a 5-minute boundary
OLD_BASE = BASE - 5 * 3600  # the second source: hours older
FEED_WALL = datetime.fromtimestamp(BASE + 2400, UTC)  # held still while feeding
FINAL_WALL = datetime.fromtimestamp(BASE + 2400 + 3600, UTC)  # everything has closed by then
LIVE = ("A0", "A1", "A2")
OLDER = ("B0", "B1")

_real = load_segments().segments
_segments = [_real[i].model_copy(update={"id": sid}) for i, sid in enumerate(LIVE + OLDER)]
REGISTRY = SegmentRegistry.model_validate({"segment": [s.model_dump() for s in _segments]})

Reading = tuple[str, int, int, int | None, int]  # segment, ts, count, speed, occupancy


@st.composite
def readings(draw: st.DrawFn, segments: Sequence[str] = LIVE, base: int = BASE) -> list[Reading]:
    """Each segment reports about every 60 s (jitter within the minute, some readings
    missing, some slow), in time order across segments."""
    out: list[Reading] = []
    for sid in segments:
        for minute in range(draw(st.integers(2, 24))):
            if draw(st.integers(0, 9)) == 0:
                continue  # a missed reading
            ts = base + 60 * minute + draw(st.integers(-29, 29))
            speed = draw(st.one_of(st.none(), st.integers(2, 80)))
            out.append((sid, ts, draw(st.integers(0, 40)), speed, draw(st.integers(0, 100))))
    return sorted(out, key=lambda r: (r[1], r[0]))


def message(offset: int, r: Reading) -> Message:
    sid, ts, count, speed, occupancy = r
    body = {"segment_id": sid, "timestamp": datetime.fromtimestamp(ts, UTC).isoformat(),
            "vehicle_count": count, "mean_speed_kmh": speed, "occupancy_pct": occupancy}  # fmt: skip
    return Message("traffic.observations", 0, offset, None, orjson.dumps(body))


def partition(saved: bytes | None = None) -> TrafficPartition:
    return TrafficPartition(SETTINGS, load_rules(), REGISTRY, gazetteer(), saved)


class Table:
    """ReplacingMergeTree(version) over (segment_id, window_start), and alarms by id."""

    def __init__(self) -> None:
        self.rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.alarms: dict[str, Alarm] = {}

    def take(self, out: Emitted) -> None:
        for row in out.tables.get("traffic_segment_5m", ((), []))[1]:
            key = (row[0], row[1])
            if key not in self.rows or row[-1] >= self.rows[key][-1]:
                self.rows[key] = tuple(row)
        for a in out.alarms:
            if a.id not in self.alarms or a.version >= self.alarms[a.id].version:
                self.alarms[a.id] = a

    def final(self) -> tuple[dict[tuple[Any, ...], tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
        alarms = {i: (a.state, a.level, a.value, a.started_at) for i, a in self.alarms.items()}
        return self.rows, alarms


def process(stream: Sequence[Reading], cuts: Sequence[int] = (), saves: Sequence[int] = ()):  # type: ignore[no-untyped-def]
    """Feed ``stream`` in batches ending before each index in ``cuts`` (a tick after every
    batch), saving and restoring the state after the batches that end at ``saves``."""
    part, table = partition(), Table()
    edges = sorted({0, len(stream), *cuts})
    for lo, hi in itertools.pairwise(edges):
        out = Emitted()
        for offset in range(lo, hi):
            _, rejected = part.handle(message(offset, stream[offset]), FEED_WALL, out)
            assert all(r.reason.value == "late" for r in rejected), rejected
        part.tick(FEED_WALL, out)
        table.take(out)
        if hi in saves:
            part = partition(part.dumps())
            assert part.offset("traffic.observations") == hi - 1
    out = Emitted()
    part.tick(FINAL_WALL, out)
    table.take(out)
    return table.final()


def in_order(stream: Sequence[Reading]):  # type: ignore[no-untyped-def]
    return process(stream, cuts=range(len(stream)))


CASES = settings(max_examples=40, deadline=None)


@CASES
@given(readings())
def test_in_order_every_window_holds_every_reading(stream: list[Reading]) -> None:
    rows, _ = in_order(stream)
    expected: dict[tuple[str, int], list[int]] = {}
    for sid, ts, count, _, _ in stream:
        acc = expected.setdefault((sid, ts // 300 * 300), [0, 0])
        acc[0], acc[1] = acc[0] + 1, acc[1] + count
    got = {(r[0], int(r[1].timestamp())): [r[4], r[5]] for r in rows.values()}
    assert got == expected
    assert all(r[4] == r[-1] for r in rows.values())  # version = readings held


@CASES
@given(readings(), st.randoms(use_true_random=False))
def test_shuffled_within_the_lateness_and_interleaved(
    stream: list[Reading], rnd: random.Random
) -> None:
    # Each reading is delayed by less than the lateness: none falls behind its watermark.
    delayed = sorted(stream, key=lambda r: (r[1] + rnd.uniform(0, LATENESS - 0.01), rnd.random()))
    assert process(delayed, cuts=range(len(delayed))) == in_order(stream)


@CASES
@given(readings(), st.data())
def test_random_batches_with_save_and_restore(stream: list[Reading], data: st.DataObject) -> None:
    cuts = data.draw(st.sets(st.integers(1, max(1, len(stream) - 1))))
    saves = data.draw(st.sets(st.sampled_from(sorted({*cuts, len(stream)}))))
    assert process(stream, sorted(cuts), sorted(saves)) == in_order(stream)


@CASES
@given(readings(), st.randoms(use_true_random=False))
def test_duplicates_change_nothing(stream: list[Reading], rnd: random.Random) -> None:
    repeated = list(stream)
    for r in rnd.sample(stream, k=len(stream) // 3):
        # Anywhere after the original: inside its window, a correction's place, or late.
        repeated.insert(rnd.randint(repeated.index(r) + 1, len(repeated)), r)
    assert process(repeated, cuts=range(len(repeated))) == in_order(stream)


@CASES
@given(readings(), readings(OLDER, OLD_BASE), st.randoms(use_true_random=False))
def test_an_older_source_next_to_a_live_one(
    live: list[Reading], older: list[Reading], rnd: random.Random
) -> None:
    merged, i, j = [], 0, 0
    while i < len(live) or j < len(older):
        if j == len(older) or (i < len(live) and rnd.random() < 0.5):
            merged.append(live[i])
            i += 1
        else:
            merged.append(older[j])
            j += 1
    rows, alarms = process(merged, cuts=range(len(merged)))
    live_rows, live_alarms = in_order(live)
    older_rows, older_alarms = in_order(older)
    assert rows == {**live_rows, **older_rows}
    assert alarms == {**live_alarms, **older_alarms}
