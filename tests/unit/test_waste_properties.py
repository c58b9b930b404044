"""Garbage trucks give the same rows however the feed arrives (issue 8): in order,
shuffled within the lateness, in batches with a crash and restore between, with
redeliveries, and beside a replay of hours-old fixes of other trucks."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alarm_rules import load_rules
from schemas.settings import Settings
from schemas.waste import load_sites
from streams.pipeline import Emitted, Message, alarm_row
from streams.waste_logic import WastePartition
from tests.unit import stream_orders as orders

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
BOOK, SITES = load_rules(), load_sites()
MIDNIGHT = datetime(2026, 3, 3, 17, 0, tzinfo=UTC).timestamp()  # 00:00 WIB
TPA = next(s for s in SITES.sites if s.id == "TPA-JATIBARANG")
# Inside the TPA, just outside it, and a few kilometres away: geofence crossings, idle
# stops away from sites, and jumps the speed filter rejects.
PLACES = [(TPA.lat, TPA.lon), (TPA.lat + 0.007, TPA.lon), (TPA.lat + 0.05, TPA.lon + 0.05)]

Event = dict[str, Any]


@st.composite
def truck_fixes(draw: st.DrawFn, trucks: list[str], start: float) -> list[orders.Timed[Event]]:
    events: list[orders.Timed[Event]] = []
    for truck in trucks:
        ts = start + draw(st.integers(0, 600))
        for _ in range(draw(st.integers(1, 40))):
            ts += draw(st.sampled_from([1, 5, 30, 60, 400]))
            lat, lon = PLACES[draw(st.integers(0, len(PLACES) - 1))]
            fix = {"truck_id": truck, "lat": lat + draw(st.integers(0, 9)) * 1e-4, "lon": lon,
                   "timestamp": datetime.fromtimestamp(ts, UTC).isoformat(),
                   "speed_kmh": draw(st.sampled_from([None, 0.0, 25.0]))}  # fmt: skip
            events.append((truck, float(ts), fix))
    return sorted(events, key=lambda e: (e[1], e[0]))


class Run:
    def __init__(self, wall: float) -> None:
        self.part = WastePartition(SETTINGS, BOOK, SITES, wall=wall)
        self.wall = datetime.fromtimestamp(wall, UTC)
        self.out = Emitted()
        self.rejected: list[str] = []

    def batch(self, events: list[orders.Timed[Event]]) -> None:
        """One message, then the tick the pipeline runs after every batch."""
        msg = Message("waste.truck-positions", 0, self.part.offset("w") + 1, None,
                      orjson.dumps([e for _, _, e in events]))  # fmt: skip
        self.rejected += [r.reason.value for r in self.part.handle(msg, self.wall, self.out)[1]]
        self.part.tick(self.wall, self.out)

    def restore(self) -> None:
        self.part = WastePartition(SETTINGS, BOOK, SITES, self.part.dumps(), self.wall.timestamp())

    def rows(self, trucks: set[str]) -> dict[str, dict[Hashable, tuple[Any, ...]]]:
        self.part.tick(datetime.fromtimestamp(self.wall.timestamp() + 30 * 86400, UTC), self.out)
        assert self.part.state.trucks == {}  # all evicted, so all written
        tables = self.out.tables
        daily = [r for r in tables.get("waste_truck_daily", ((), []))[1] if r[0] in trucks]
        fences = [r for r in tables.get("waste_geofence_events", ((), []))[1] if r[0] in trucks]
        alarms = [alarm_row(a) for a in self.out.alarms if a.entity in trucks]
        return {
            "daily": orders.last_versions(daily, lambda r: (r[0], r[1]), lambda r: r[6]),
            "geofence": orders.last_versions(fences, tuple),
            "alarms": orders.last_versions(alarms, lambda r: r[0], lambda r: r[10]),
        }


def one_by_one(
    events: list[orders.Timed[Event]], wall: float, trucks: set[str], late_ok: bool = False
) -> dict:  # type: ignore[type-arg]
    run = Run(wall)
    for e in events:
        run.batch([e])
    # Only a redelivery can come past the correction horizon: dead-lettered, never counted.
    assert set(run.rejected) <= ({"late"} if late_ok else set())
    return run.rows(trucks)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_rows_do_not_depend_on_arrival(data: st.DataObject) -> None:
    trucks = ["DLH-01", "DLH-02"]
    events = data.draw(truck_fixes(trucks, MIDNIGHT - 1800))
    wall = events[-1][1] + 60
    lateness = SETTINGS.window_allowed_lateness_s
    rng = data.draw(st.randoms(use_true_random=False))
    expected = one_by_one(events, wall, set(trucks))  # (a)
    assert expected["daily"]

    b = orders.shuffled_within_lateness(rng, events, lateness)  # (b)
    assert one_by_one(b, wall, set(trucks)) == expected

    run = Run(wall)  # (c)
    for batch in orders.batches(rng, events):
        run.batch(batch)
        if rng.random() < 0.5:
            run.restore()
    assert run.rejected == [] and run.rows(set(trucks)) == expected

    d = orders.with_duplicates(  # (d)
        rng, orders.shuffled_within_lateness(rng, events, lateness)
    )
    assert one_by_one(d, wall, set(trucks), late_ok=True) == expected

    old = data.draw(truck_fixes(["DLH-90", "DLH-91"], MIDNIGHT - 6 * 3600))  # (e)
    mixed = orders.interleaved(rng, events, old)
    assert one_by_one(mixed, wall, set(trucks)) == expected
    assert one_by_one(mixed, wall, {"DLH-90", "DLH-91"}) == one_by_one(
        old, wall, {"DLH-90", "DLH-91"}
    )
