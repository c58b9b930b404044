"""Citizen reports should give the same rows however their events arrive (issue 8).

A report's order is its event time: received, then its steps (assigned, in progress,
re-assigned, resolved or rejected) at later times. The feed is processed (a) in order;
(b) with each report's events shuffled within the lateness, reports interleaved; (c) in
random batches with the state saved and restored between some; (d) with redeliveries;
(e) interleaved with another source's reports hours older. Rows are compared as
``ReplacingMergeTree ... FINAL`` shows them: the reports row with the highest version,
the report_events row last written per (report, seq), each alarm's last version.

Each report folds its steps in its own event time and judges what needs its whole past (a
step that does not fit, SLA rungs, the close) once its clock less the lateness has passed,
so every order gives the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import load_rules
from schemas.reports import load_routing
from schemas.settings import Settings
from schemas.spatial import gazetteer
from streams.pipeline import Emitted, Message, alarm_row
from streams.reports_logic import ReportsPartition
from tests.unit import stream_orders as orders

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
BOOK, ROUTING, GAZETTEER = load_rules(), load_routing(), gazetteer()
LATENESS_S = SETTINGS.window_allowed_lateness_s
T0 = 1_780_000_000.0
OLDER_S = 6 * 3600.0
# Steps closer than the lateness (a shuffle reorders them) and hours apart (SLA breaches).
GAPS = (1.0, 4.0, 9.0, 1800.0, 5 * 3600.0)
OTHER = {"jalan_rusak": "Disperkim", "genangan": "Dinas Pekerjaan Umum"}

Event = dict[str, Any]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@st.composite
def report(draw: st.DrawFn, rid: str, start: float) -> list[orders.Timed[Event]]:
    """One report's legal life in event-time order."""
    category = draw(st.sampled_from(sorted(OTHER)))
    ts, out = start, []

    def add(kind: str, **kw: Any) -> None:
        nonlocal ts
        body = {"report_id": rid, "kind": kind, "timestamp": _iso(ts), "actor": f"a-{kind}", **kw}
        out.append((rid, ts, body))
        ts += draw(st.sampled_from(GAPS))

    add("received", category=category, text="lubang", lat=-6.99, lon=110.42, channel="api")
    path = draw(st.sampled_from(["open", "assigned", "worked", "moved", "resolved", "rejected"]))
    if path == "rejected":
        add("rejected", note="duplikat")
        return out
    if path == "open":
        return out
    add("assigned")
    if path in ("worked", "moved", "resolved"):
        add("in_progress")
    if path in ("moved", "resolved"):
        add("assigned", department=OTHER[category], note="pindah")
    if path == "resolved":
        add("in_progress")
        add("resolved", note="selesai")
    return out


@st.composite
def feed(draw: st.DrawFn, prefix: str, start: float) -> list[orders.Timed[Event]]:
    events = []
    for i in range(draw(st.integers(1, 4))):
        events += draw(report(f"{prefix}-{i}", start + draw(st.integers(0, 120))))
    return sorted(events, key=lambda e: e[1])


Rows = dict[str, dict[Hashable, tuple[Any, ...]]]
KEYS: dict[str, tuple[Callable[[Sequence[Any]], Hashable], Callable[[Sequence[Any]], Any] | None]] = {
    ddl.CITIZEN_REPORTS: (lambda r: r[0], lambda r: r[1]),
    ddl.REPORT_EVENTS: (lambda r: (r[0], r[1]), None),
    "alarms": (lambda r: r[0], lambda r: r[10]),
}  # fmt: skip


class Run:
    def __init__(self, wall: float) -> None:
        self.now = datetime.fromtimestamp(wall, UTC)
        self.part = ReportsPartition(SETTINGS, BOOK, ROUTING, GAZETTEER)
        self.inserted: dict[str, list[Sequence[Any]]] = {t: [] for t in KEYS}

    def keep(self, out: Emitted) -> None:
        for table, (_, rows) in out.tables.items():
            self.inserted[table].extend(rows)
        self.inserted["alarms"].extend(alarm_row(a) for a in out.alarms)

    def batch(self, events: Sequence[orders.Timed[Event]]) -> None:
        out = Emitted()
        body = orjson.dumps([e for _, _, e in events])
        msg = Message("reports.events", 0, self.part.offset("r") + 1, None, body)
        self.part.handle(msg, self.now, out)
        self.part.tick(self.now, out)
        self.keep(out)

    def restore(self) -> None:
        self.part = ReportsPartition(SETTINGS, BOOK, ROUTING, GAZETTEER, self.part.dumps())

    def rows(self, prefix: str) -> Rows:
        out = Emitted()  # two days on: every open report past its SLA
        self.part.tick(datetime.fromtimestamp(self.now.timestamp() + 2 * 86400, UTC), out)
        self.keep(out)
        return {
            t: orders.last_versions([r for r in rows if str(r[0 if t != "alarms" else 2])
                                     .startswith(prefix)], *KEYS[t])
            for t, rows in self.inserted.items()
        }  # fmt: skip


def one_by_one(events: Sequence[orders.Timed[Event]], wall: float, prefix: str) -> Rows:
    run = Run(wall)
    for e in events:
        run.batch([e])
    return run.rows(prefix)


def same(got: Rows, expected: Rows) -> None:
    for table in expected:
        for key in set(got[table]) | set(expected[table]):
            assert got[table].get(key) == expected[table].get(key), (table, key)


@settings(max_examples=50, deadline=None)
@given(first=feed("new", T0), second=feed("old", T0 - OLDER_S), seed=st.integers(0, 2**32 - 1))
def test_rows_do_not_depend_on_arrival(
    first: list[orders.Timed[Event]], second: list[orders.Timed[Event]], seed: int
) -> None:
    rng = random.Random(seed)
    wall = max(e[1] for e in first + second) + 60
    expected = one_by_one(first, wall, "new")  # (a)
    assert expected[ddl.CITIZEN_REPORTS]

    same(one_by_one(orders.shuffled_within_lateness(rng, first, LATENESS_S), wall, "new"),
         expected)  # (b)  # fmt: skip

    run = Run(wall)  # (c)
    for batch in orders.batches(rng, first):
        run.batch(batch)
        if rng.random() < 0.5:
            run.restore()
    same(run.rows("new"), expected)

    d = orders.with_duplicates(rng, orders.shuffled_within_lateness(rng, first, LATENESS_S))
    same(one_by_one(d, wall, "new"), expected)  # (d)

    mixed = orders.interleaved(rng, first, second)  # (e)
    same(one_by_one(mixed, wall, "new"), expected)
    same(one_by_one(mixed, wall, "old"), one_by_one(second, wall, "old"))


@settings(max_examples=40, deadline=None)
@given(first=feed("new", T0), second=feed("old", T0 - OLDER_S), seed=st.integers(0, 2**32 - 1))
def test_batches_and_restores_give_the_same_rows(
    first: list[orders.Timed[Event]], second: list[orders.Timed[Event]], seed: int
) -> None:
    """What holds today, (c): the events in order, however batched and restored."""
    rng = random.Random(seed)
    wall = max(e[1] for e in first + second) + 60
    expected = one_by_one(first, wall, "new")
    run = Run(wall)
    for batch in orders.batches(rng, first):
        run.batch(batch)
        if rng.random() < 0.5:
            run.restore()
    same(run.rows("new"), expected)
