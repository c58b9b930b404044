"""Property tests of the flood logic: the same readings and reports, delivered the ways real
feeds deliver them, give the same rows (the last version of each key, as ClickHouse's
ReplacingMergeTree ... FINAL shows them) as delivering them in order:

(a) in order; (b) shuffled within the allowed lateness, stations interleaved; (c) split into
random batches with the state saved and restored at random points; (d) with redeliveries;
(e) interleaved with a replay of other stations whose readings are hours older, which must
give both sources exactly the rows each gives alone.

Wall time is fixed during the feed; each run ends with a tick an hour later (every held
reading applied, most reports still counted) and one days later (every report expired,
every station silent), and the rows are compared after each.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alarm_rules import load_rules
from schemas.catalog import FLOOD_REPORTS, GAUGE_READINGS
from schemas.flood import StationRegistry
from schemas.spatial import gazetteer
from streams.flood_logic import FloodProcessor
from streams.pipeline import Emitted, Message, alarm_row
from tests.unit.stream_orders import (
    batches,
    interleaved,
    last_versions,
    shuffled_within_lateness,
    with_duplicates,
)

LATENESS_S = 10.0
T0 = 1_780_000_000.0
SPAN_S = 5 * 3600.0
WALL = T0 + SPAN_S + 60  # every event is in the past
# Two closing ticks: an hour on (every held reading applied, most reports still counted, the
# fast gauges silent), then days on (every report expired, every gauge silent).
FINALS = (WALL + 3600, WALL + 3 * 86400)
OLDER_S = 9 * 3600.0  # the replayed source's readings are this much older

# (id, kind, cadence_s, lat, lon): where real gauges stand, so kecamatans are real ones.
STATIONS = [
    ("A1", "level", 10, -6.9935, 110.3955),  # Semarang Barat
    ("A2", "level", 10, -6.9640, 110.3890),  # Semarang Barat: one status from two gauges
    ("H1", "level", 3600, -6.9510, 110.4400),  # Semarang Utara, hourly
    ("R1", "rain", 60, -7.0020, 110.3985),  # Gajahmungkur
    ("O1", "level", 10, -6.9995, 110.4530),  # Gayamsari: the replayed source
    ("O2", "level", 3600, -6.9560, 110.4570),  # Genuk: the replayed source, hourly
]
FIRST, SECOND = ("A1", "A2", "H1", "R1"), ("O1", "O2")
REPORT_SITES = {
    "first": [(-6.9935, 110.3955), (-6.9510, 110.4400)],
    "second": [(-6.9995, 110.4530)],
}
REGISTRY = StationRegistry.model_validate({"station": [
    {"id": sid, "name": sid, "river": f"river {sid}", "kind": kind, "cadence_s": cadence,
     "lat": lat, "lon": lon, "min_value": 0, "max_value": 1000,
     **({"waspada": 150, "siaga": 200, "awas": 250} if kind == "level" else {})}
    for sid, kind, cadence, lat, lon in STATIONS
]})  # fmt: skip
GAZETTEER = gazetteer()
BOOK = load_rules()

Event = tuple[str, bytes]  # (topic, payload)
Timed = tuple[str, float, Event]  # (entity, event time, event)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _reading(sid: str, kind: str, ts: float, value: float) -> Timed:
    body = {"station_id": sid, "kind": kind, "value": value, "timestamp": _iso(ts)}
    return sid, ts, (GAUGE_READINGS.name, orjson.dumps(body))


@st.composite
def gauge(draw: st.DrawFn, sid: str, shift: float) -> list[Timed]:
    """One station's readings, in event-time order: fast gauges every 2 s to 2 min (some
    closer than the lateness, so a shuffle reorders them) with small or sudden changes,
    hourly ones about hourly with bigger ones, rain as rain."""
    _, kind, cadence, _, _ = next(s for s in STATIONS if s[0] == sid)
    hourly = cadence >= 3600
    gaps = st.sampled_from([3000, 3600, 4200] if hourly else [2, 5, 15, 60, 120])
    steps = st.sampled_from([-30, 0, 40, 150] if hourly else [-10, 0, 3, 15, 40])
    n = draw(st.integers(2, 6 if hourly else 30))
    ts = T0 - shift + draw(st.integers(0, 600))
    level = float(draw(st.sampled_from([60, 120, 180])))
    out = []
    for _ in range(n):
        if kind == "rain":
            level = float(draw(st.sampled_from([0, 0.5, 12])))
        out.append(_reading(sid, kind, ts, level))
        ts += draw(gaps)
        level = min(max(level + draw(steps), 0.0), 1000.0)
    return [e for e in out if e[1] <= T0 - shift + SPAN_S]


@st.composite
def reports(draw: st.DrawFn, source: str, shift: float) -> list[Timed]:
    out = []
    for i in range(draw(st.integers(0, 3))):
        lat, lon = draw(st.sampled_from(REPORT_SITES[source]))
        ts = T0 - shift + draw(st.integers(0, int(SPAN_S)))
        body = {"report_id": f"{source}-{i}", "lat": lat, "lon": lon, "timestamp": _iso(ts),
                "depth_cm": draw(st.sampled_from([5, 20, 45, 90]))}  # fmt: skip
        out.append((f"{source}-{i}", float(ts), (FLOOD_REPORTS.name, orjson.dumps(body))))
    return out


@st.composite
def source(draw: st.DrawFn, stations: Sequence[str], name: str, shift: float) -> list[Timed]:
    events = [e for sid in stations for e in draw(gauge(sid, shift))]
    events += draw(reports(name, shift))
    return sorted(events, key=lambda e: (e[1], e[0]))


Rows = dict[str, dict[Hashable, tuple[Any, ...]]]
KEYS: dict[str, tuple[Callable[[Sequence[Any]], Hashable], Callable[[Sequence[Any]], Any] | None]] = {
    "flood_gauge_readings": (lambda r: (r[0], r[1], r[2]), None),
    "flood_reports": (lambda r: r[0], None),
    "flood_kecamatan_status": (lambda r: r[0], lambda r: r[1]),
    "alarms": (lambda r: r[0], lambda r: r[10]),
    "alarm_transitions": (lambda r: (r[0], r[10]), None),
}  # fmt: skip


def run(arrival: list[list[Timed]], restore_after: frozenset[int] = frozenset()) -> list[Rows]:
    """Feed batches as the pipeline does (each batch then a tick), save and restore the
    state after the batches in ``restore_after``; the rows after each closing tick."""
    proc = FloodProcessor(BOOK, REGISTRY, GAZETTEER, 300.0, lateness_s=LATENESS_S)
    inserted: dict[str, list[Sequence[Any]]] = {t: [] for t in KEYS}
    offsets = {GAUGE_READINGS.name: 0, FLOOD_REPORTS.name: 0}
    now = datetime.fromtimestamp(WALL, UTC)

    def keep(out: Emitted) -> None:
        for table, (_, rows) in out.tables.items():
            inserted[table].extend(rows)
        inserted["alarms"].extend(alarm_row(a) for a in out.alarms)
        inserted["alarm_transitions"].extend(alarm_row(a) for a in out.alarms)

    for i, batch in enumerate(arrival):
        out = Emitted()
        for _, _, (topic, payload) in batch:
            _, rejected = proc.handle(Message(topic, 0, offsets[topic], None, payload), now, out)
            assert rejected == []
            offsets[topic] += 1
        proc.tick(now, out)
        keep(out)
        if i in restore_after:
            proc = FloodProcessor(BOOK, REGISTRY, GAZETTEER, 300.0, proc.dumps(), LATENESS_S)
    snapshots = []
    for final in FINALS:
        out = Emitted()
        proc.tick(datetime.fromtimestamp(final, UTC), out)
        keep(out)
        snapshots.append({t: last_versions(rows, *KEYS[t]) for t, rows in inserted.items()})
    return snapshots


def one_by_one(events: Sequence[Timed]) -> list[list[Timed]]:
    return [[e] for e in events]


def part(runs: list[Rows], stations: Sequence[str], report_prefix: str) -> list[Rows]:
    """The rows that belong to one source: its stations, reports, kecamatans and alarms."""
    kecs = {GAZETTEER.kecamatan.at(s[4], s[3]) for s in STATIONS if s[0] in stations}
    kecs |= {GAZETTEER.kecamatan.at(lon, lat) for lat, lon in REPORT_SITES[report_prefix]}
    mine: dict[str, Callable[[tuple[Any, ...]], bool]] = {
        "flood_gauge_readings": lambda r: r[0] in stations,
        "flood_reports": lambda r: str(r[0]).startswith(report_prefix),
        "flood_kecamatan_status": lambda r: r[0] in kecs,
        "alarms": lambda r: r[2] in stations,
        "alarm_transitions": lambda r: r[2] in stations,
    }
    return [
        {t: {k: r for k, r in rs.items() if mine[t](r)} for t, rs in rows.items()} for rows in runs
    ]


@settings(max_examples=50, deadline=None)
@given(
    first=source(FIRST, "first", 0.0),
    second=source(SECOND, "second", OLDER_S),
    order=st.integers(0, 2**32),
)
def test_every_delivery_gives_the_rows_of_the_in_order_run(
    first: list[Timed], second: list[Timed], order: int
) -> None:
    rng = random.Random(order)
    expected = run(one_by_one(first))  # (a)
    assert expected[0]["flood_gauge_readings"] and expected[0]["flood_kecamatan_status"]
    assert expected[1]["alarms"]  # at least every station's silence at the end

    shuffled = shuffled_within_lateness(rng, first, LATENESS_S)
    assert run(one_by_one(shuffled)) == expected  # (b)

    split = batches(rng, first)
    restore = frozenset(i for i in range(len(split)) if rng.random() < 0.5)
    assert run(split, restore) == expected  # (c)

    assert run(one_by_one(with_duplicates(rng, first))) == expected  # (d)

    both = run(one_by_one(interleaved(rng, first, second)))  # (e)
    assert part(both, FIRST, "first") == part(expected, FIRST, "first")
    assert part(both, SECOND, "second") == part(run(one_by_one(second)), SECOND, "second")


def test_an_hourly_gauge_and_a_fast_one_both_raise_flood_rise_in_any_order() -> None:
    """A fixed case the generator may miss: a fast gauge at 240 cm/h and an hourly one
    gaining 260 cm in its hour, both rising fast; shuffled, they still do."""
    fast = [_reading("A1", "level", T0 + i * 60, 100 + 4.5 * i) for i in range(40)]
    hourly = [_reading("H1", "level", T0 + h * 3600, v) for h, v in enumerate([60, 70, 330])]
    events = sorted(fast + hourly, key=lambda e: e[1])
    rows = run(one_by_one(events))
    rises = {(r[2], r[13]) for r in rows[0]["alarms"].values() if r[1] == "flood_rise"}
    assert {("A1", "rising fast"), ("H1", "rising fast")} <= rises
    shuffled = shuffled_within_lateness(random.Random(1), events, LATENESS_S)
    assert run([shuffled]) == rows
