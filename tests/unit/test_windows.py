"""The stream core: per-entity clock, reorder buffer, correctable windows."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.windows import EntityClock, EntityWindows, Placement, Reorder, WindowPolicy

POLICY = WindowPolicy(size_s=60, lateness_s=10.0, horizon_s=120.0)
WALL = 1_000_000.0


def test_the_clock_advances_by_measured_quiet_time_only() -> None:
    clock = EntityClock()
    assert clock.now(WALL) is None
    clock.observe(600.0, WALL)
    assert clock.now(WALL) == 600.0
    assert clock.now(WALL + 25) == 625.0
    clock.observe(590.0, WALL + 30)  # older: neither the time nor the quiet period moves
    assert clock.now(WALL + 30) == 630.0
    clock.observe(640.0, WALL + 30)
    assert clock.now(WALL + 30) == 640.0


def test_windows_close_at_end_plus_lateness_then_take_corrections_then_refuse() -> None:
    w: EntityWindows[list[float]] = EntityWindows()
    for ts in (0.0, 20.0, 59.0):
        assert POLICY.place(w, ts, WALL, list)[0] is Placement.OPEN
    assert POLICY.due(w, WALL) == []  # clock 59, watermark 49
    assert POLICY.due(w, WALL + 10) == []  # clock 69, watermark 59: not yet past 60
    [(start, slot)] = POLICY.due(w, WALL + 11)
    assert start == 0 and slot.version == 3
    placement, late = POLICY.place(w, 30.0, WALL + 11, list)
    assert placement is Placement.CORRECTION and late is not None
    [(start, slot)] = POLICY.due(w, WALL + 11)
    assert start == 0 and slot.version == 4  # emitted again with a higher version
    assert POLICY.place(w, 30.0, WALL + 11, list)[0] is Placement.DUPLICATE
    assert POLICY.due(w, WALL + 11) == []
    # 60 + 120 of horizon passed by the watermark: window 0 is gone, its events are late.
    POLICY.due(w, WALL + 200)
    assert POLICY.place(w, 30.0, WALL + 200, list)[0] is Placement.LATE


def test_a_window_that_closed_empty_can_still_be_corrected_inside_the_horizon() -> None:
    w: EntityWindows[list[float]] = EntityWindows()
    POLICY.place(w, 130.0, WALL, list)
    POLICY.due(w, WALL + 60)  # watermark 180: windows before 180 closed, none held events
    assert POLICY.place(w, 70.0, WALL + 60, list)[0] is Placement.CORRECTION
    assert [s for s, _ in POLICY.due(w, WALL + 60)] == [60]


def test_reorder_releases_in_event_time_order_below_the_watermark() -> None:
    r: Reorder[str] = Reorder()
    for ts, item in ((5.0, "b"), (1.0, "a"), (9.0, "c")):
        assert r.add(ts, item)
    assert not r.add(5.0, "b again")
    assert [i for _, i in r.release(6.0)] == ["a", "b"]
    assert r.is_late(5.5) and not r.is_late(6.0)
    assert [i for _, i in r.release(None, force=True)] == ["c"]


def test_reorder_extend_holds_a_run_in_order_and_refuses_an_older_one() -> None:
    one: Reorder[str] = Reorder()
    many: Reorder[str] = Reorder()
    for ts, item in ((1.0, "a"), (5.0, "b"), (9.0, "c")):
        one.add(ts, item)
    many.add(1.0, "a")
    many.extend([(5.0, "b"), (9.0, "c")])
    assert many.pending == one.pending
    with pytest.raises(ValueError, match="older than the newest held"):
        many.extend([(9.0, "c again")])
    assert [i for _, i in many.release(6.0)] == ["a", "b"]


@settings(max_examples=50, deadline=None)
@given(order=st.integers(0, 2**32), n=st.integers(1, 60))
def test_window_contents_do_not_depend_on_order_within_lateness(order: int, n: int) -> None:
    rng = random.Random(order)
    times = sorted({round(rng.uniform(0, 600), 3) for _ in range(n)})
    arrivals = sorted(times, key=lambda t: t + rng.uniform(0, POLICY.lateness_s))

    def windows(seq: list[float]) -> dict[int, list[float]]:
        w: EntityWindows[list[float]] = EntityWindows()
        out: dict[int, list[float]] = {}
        for ts in seq:
            placement, slot = POLICY.place(w, ts, WALL, list)
            assert placement in (Placement.OPEN, Placement.DUPLICATE)
            if slot is not None:
                slot.acc.append(ts)
            for start, s in POLICY.due(w, WALL):
                out[start] = sorted(s.acc)
        for start, s in POLICY.due(w, WALL + 10_000):
            out[start] = sorted(s.acc)
        return out

    assert windows(arrivals) == windows(times)
