"""Camera incidents give the same rows however the feed arrives (issue 8): in order,
shuffled within the lateness, in batches with a crash and restore between, with
redeliveries, and beside a replay of hours-old events of other cameras."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alarm_rules import load_rules
from schemas.cctv import load_cameras
from schemas.settings import Settings
from schemas.spatial import gazetteer
from streams.cctv_logic import CctvPartition
from streams.pipeline import Emitted, Message, alarm_row
from tests.unit import stream_orders as orders

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
BOOK, CAMERAS, GAZETTEER = load_rules(), load_cameras(), gazetteer()
T0 = 1_780_000_000.0
IDS = [c.id for c in CAMERAS.cameras]
LIVE, REPLAY = set(IDS[:2]), set(IDS[2:4])

Event = dict[str, Any]


@st.composite
def camera_events(draw: st.DrawFn, cameras: set[str], start: float) -> list[orders.Timed[Event]]:
    events: list[orders.Timed[Event]] = []
    for camera in sorted(cameras):
        ts = start + draw(st.integers(0, 600))
        for _ in range(draw(st.integers(1, 30))):
            # Steps around the 10-minute incident gap, so incidents split and bridge.
            ts += draw(st.sampled_from([1, 7, 60, 300, 590, 610, 1200]))
            kind = draw(st.sampled_from(["crowd", "accident", "plate_read"]))
            ev = {"camera_id": camera, "kind": kind, "confidence": draw(st.sampled_from([0.3, 0.62, 0.75, 0.9])),
                  "timestamp": datetime.fromtimestamp(ts, UTC).isoformat()}  # fmt: skip
            events.append((camera, float(ts), ev))
    return sorted(events, key=lambda e: (e[1], e[0]))


class Run:
    def __init__(self, wall: float) -> None:
        self.wall = datetime.fromtimestamp(wall, UTC)
        self.part = CctvPartition(SETTINGS, BOOK, CAMERAS, GAZETTEER, wall=wall)
        self.out = Emitted()
        self.rejected: list[str] = []

    def batch(self, events: list[orders.Timed[Event]]) -> None:
        """One message, then the tick the pipeline runs after every batch."""
        msg = Message("cctv.events", 0, self.part.offset("c") + 1, None,
                      orjson.dumps([e for _, _, e in events]))  # fmt: skip
        self.rejected += [r.reason.value for r in self.part.handle(msg, self.wall, self.out)[1]]
        self.part.tick(self.wall, self.out)

    def restore(self) -> None:
        self.part = CctvPartition(SETTINGS, BOOK, CAMERAS, GAZETTEER, self.part.dumps(),
                                  self.wall.timestamp())  # fmt: skip

    def rows(self, cameras: set[str]) -> dict[str, dict[Hashable, tuple[Any, ...]]]:
        self.part.tick(datetime.fromtimestamp(self.wall.timestamp() + 3600, UTC), self.out)
        assert all(not c.open for c in self.part.state.cameras.values())
        tables = self.out.tables
        incidents = [r for r in tables.get("cctv_incidents", ((), []))[1] if r[1] in cameras]
        events = [r for r in tables.get("cctv_events", ((), []))[1] if r[0] in cameras]
        alarms = [alarm_row(a) for a in self.out.alarms if a.entity in cameras]
        return {
            "incidents": orders.last_versions(incidents, lambda r: r[0], lambda r: r[9]),
            "events": orders.last_versions(events, lambda r: (r[0], r[2], r[1])),
            "alarms": orders.last_versions(alarms, lambda r: r[0], lambda r: r[10]),
        }


def one_by_one(
    events: list[orders.Timed[Event]], wall: float, cameras: set[str], late_ok: bool = False
) -> dict:  # type: ignore[type-arg]
    run = Run(wall)
    for e in events:
        run.batch([e])
    # Only a redelivery can come past the correction horizon: dead-lettered, never counted.
    assert set(run.rejected) <= ({"late"} if late_ok else set())
    return run.rows(cameras)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_rows_do_not_depend_on_arrival(data: st.DataObject) -> None:
    events = data.draw(camera_events(LIVE, T0))
    rng = data.draw(st.randoms(use_true_random=False))
    wall, lateness = events[-1][1] + 60, SETTINGS.window_allowed_lateness_s
    expected = one_by_one(events, wall, LIVE)  # (a)
    assert expected["events"]

    b = orders.shuffled_within_lateness(rng, events, lateness)  # (b)
    assert one_by_one(b, wall, LIVE) == expected

    run = Run(wall)  # (c)
    for batch in orders.batches(rng, events):
        run.batch(batch)
        if rng.random() < 0.5:
            run.restore()
    assert run.rejected == [] and run.rows(LIVE) == expected

    d = orders.with_duplicates(rng, orders.shuffled_within_lateness(rng, events, lateness))  # (d)
    assert one_by_one(d, wall, LIVE, late_ok=True) == expected

    old = data.draw(camera_events(REPLAY, T0 - 6 * 3600))  # (e)
    mixed = orders.interleaved(rng, events, old)
    assert one_by_one(mixed, wall, LIVE) == expected
    assert one_by_one(mixed, wall, REPLAY) == one_by_one(old, wall, REPLAY)
