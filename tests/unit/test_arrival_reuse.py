"""The arrival observation reused at release changes nothing but the work done.

TransitProcessor keeps, per held fix, what ``observe`` said when it arrived, and reuses it
at release when the event-time chain stands on the same anchor. A processor whose memo
never holds anything must therefore give the same rows, alarms, counters and state, for
any arrival order: in order, shuffled within and beyond the lateness, vehicles
interleaved, redelivered, GPS jumps (single glitches and moves that re-anchor), gaps over
``max_gap_s``, intervals under ``min_interval_s``, reported speeds plausible or not (and
a source whose unit slips mid-stream), any batch split, a checkpoint restore, eviction."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streams.transit_logic as transit_logic
from schemas.alarm_rules import load_rules
from schemas.geo import offset_m
from schemas.transit import VehiclePosition
from streams.transit_logic import Outputs, PartitionState, TransitProcessor, TransitRules
from tests.unit.stream_orders import batches, shuffled_within_lateness, with_duplicates

RULES = TransitRules(book=load_rules(), lateness_s=10.0, horizon_s=120.0, evict_after_s=3600.0)
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
JUMP_M = 20_000.0  # far beyond max_plausible_kmh for any interval we generate

Event = tuple[str, float, VehiclePosition]


class NoMemo(dict[int, Any]):
    """A memo that never remembers: every release is observed afresh."""

    def __setitem__(self, key: int, value: Any) -> None:
        pass


def processor(memo: bool, state: PartitionState | None = None) -> TransitProcessor:
    proc = TransitProcessor(RULES, 0, state)
    if not memo:
        proc._arrived = NoMemo()
    return proc


# One step of a vehicle: seconds since its previous fix, how it moved, what it reported.
dts = st.one_of(
    st.sampled_from([0.0, 0.4, 0.99, 1.0, 5.0, 5.0, 10.0, 30.0, 300.0, 301.0]),
    st.floats(0.05, 60.0),
    st.floats(301.0, 900.0),
)
moves = st.one_of(
    st.floats(0.0, 45.0),  # metres per second: up to just over 150 km/h
    st.sampled_from(["jump", "glitch", "still"]),
)
reports = st.one_of(
    st.none(),
    st.floats(0.0, 149.0),
    st.floats(150.5, 900.0),  # implausible: counted, never used
    st.just("slip"),  # 3.6 times the speed it moved at (km/h written as m/s)
)
steps = st.lists(st.tuples(dts, moves, reports), min_size=1, max_size=25)


def track(vid: str, start: float, source: str, walk: list[tuple[float, Any, Any]]) -> list[Event]:
    lat, lon, ts = -6.99, 110.42, start
    out: list[Event] = []
    for dt, move, report in walk:
        ts += dt
        shown = (lat, lon)
        mps = 0.0
        if move == "jump":  # the vehicle is somewhere else from now on
            lat, lon = shown = offset_m(lat, lon, JUMP_M, 0.0)
        elif move == "glitch":  # one fix far away, then back on the track
            shown = offset_m(lat, lon, 0.0, JUMP_M)
        elif isinstance(move, float):
            mps = move
            lat, lon = shown = offset_m(lat, lon, move * dt, 0.0)
        speed = 3.6 * 3.6 * mps if report == "slip" else report
        if isinstance(speed, float) and speed > 900.0:
            speed = 900.0
        p = VehiclePosition(
            vehicle_id=vid,
            corridor=["K1", "K2", None][len(vid) % 3],
            route_id="R" + vid,
            lat=shown[0],
            lon=shown[1],
            speed_kmh=speed,
            timestamp=datetime.fromtimestamp(ts, UTC),
            source=source,
        )
        out.append((vid, p.ts, p))
    return out


def slipping(vid: str, start: float, n: int) -> list[Event]:
    """A bus whose reported speed is steadily 3.6 times the derived one: its source's unit
    verdict settles mid-stream, after which its reported speeds are no longer used."""
    return track(vid, start, "slipfeed", [(5.0, 7.0, "slip")] * n)


def run(
    memo: bool,
    arrivals: list[list[VehiclePosition]],
    walls: list[float],
    restore_at: int,
    tick_at: set[int],
    evict_at: int,
) -> tuple[list[tuple[Any, ...]], list[bytes], TransitProcessor]:
    """Feed the batches; after each, what came out so far and the state as checkpointed."""
    proc = processor(memo)
    out = Outputs()
    seen: list[tuple[Any, ...]] = []
    dumps: list[bytes] = []
    for n, (batch, wall) in enumerate(zip(arrivals, walls, strict=True)):
        for p in batch:
            proc.apply(p, out, wall, kecamatan="Tugu" if p.lat < -6.9 else "")
        if n in tick_at:
            proc.tick(wall, out)
        if n == evict_at:
            proc.tick(wall + RULES.evict_after_s + 1.0, out)  # every vehicle quiet: evicted
        if n == restore_at:
            proc = processor(memo, PartitionState.loads(proc.state.dumps()))
        seen.append(snapshot(out))
        dumps.append(proc.state.dumps())
    end = walls[-1] + 2 * RULES.evict_after_s if walls else 0.0
    proc.tick(walls[-1] + 30.0 if walls else 0.0, out)
    proc.flush(end, out)
    seen.append(snapshot(out))
    dumps.append(proc.state.dumps())
    return seen, dumps, proc


def snapshot(out: Outputs) -> tuple[Any, ...]:
    return (
        list(out.positions),
        list(out.vehicle_windows),
        [a.model_dump() for a in out.alarms],
        out.bad_fixes,
        out.stale,
        out.corrections,
        out.duplicates,
        out.evicted,
        out.late,
        out.implausible_reported,
        list(out.unit_slips),
    )


def arrange(
    rng: random.Random, events: list[Event], disorder: str, dup: bool
) -> tuple[list[list[VehiclePosition]], list[float]]:
    """An arrival order, its batches, and a non-decreasing wall time per batch."""
    events = sorted(events, key=lambda e: e[1])
    if disorder == "within":
        events = shuffled_within_lateness(rng, events, RULES.lateness_s)
    elif disorder == "beyond":  # some past the lateness, some past the horizon
        events = shuffled_within_lateness(rng, events, 3 * RULES.horizon_s)
    if dup:
        events = with_duplicates(rng, events)
    split = batches(rng, [e[2] for e in events])
    walls: list[float] = []
    newest = T0.timestamp()
    for batch in split:
        newest = max([newest, *(p.ts for p in batch)])
        lag = rng.choice([0.0, 0.0, 1.0, 5.0, 15.0, 60.0])
        walls.append(max([*walls[-1:], newest + lag]))
    return split, walls


def check_same(events: list[Event], seed: int, disorder: str, dup: bool) -> None:
    rng = random.Random(seed)
    arrivals, walls = arrange(rng, events, disorder, dup)
    n = len(arrivals)
    restore_at = rng.randrange(n) if rng.random() < 0.7 else -1
    tick_at = {i for i in range(n) if rng.random() < 0.4}
    evict_at = rng.randrange(n) if rng.random() < 0.2 else -1
    seen, dumps, _ = run(True, arrivals, walls, restore_at, tick_at, evict_at)
    seen_plain, dumps_plain, _ = run(False, arrivals, walls, restore_at, tick_at, evict_at)
    for k, (a, b) in enumerate(zip(seen, seen_plain, strict=True)):
        assert a == b, f"outputs differ after batch {k}"
    assert dumps == dumps_plain


@settings(max_examples=300, deadline=None)
@given(
    walks=st.lists(steps, min_size=1, max_size=3),
    starts=st.lists(st.floats(0.0, 90.0), min_size=3, max_size=3),
    sources=st.lists(st.sampled_from(["gps", "slipfeed"]), min_size=3, max_size=3),
    slip=st.one_of(st.just(0), st.integers(31, 60)),
    disorder=st.sampled_from(["none", "none", "within", "beyond"]),
    dup=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_memoised_and_fresh_observations_give_the_same_everything(
    walks: list[list[tuple[float, Any, Any]]],
    starts: list[float],
    sources: list[str],
    slip: int,
    disorder: str,
    dup: bool,
    seed: int,
) -> None:
    t0 = T0.timestamp()
    events: list[Event] = []
    for i, walk in enumerate(walks):
        events += track(f"v{i}", t0 + starts[i], sources[i], walk)
    if slip:
        events += slipping("slip", t0, slip)
    check_same(events, seed, disorder, dup)


def long_in_order_stream() -> list[Event]:
    t0 = T0.timestamp()
    walk: list[tuple[float, Any, Any]] = [(5.0, 12.0, None)] * 20
    walk += [(5.0, "glitch", None), (5.0, 12.0, 40.0), (0.5, 12.0, None)]
    walk += [(5.0, "jump", None)] * 4 + [(400.0, 10.0, 30.0)] + [(5.0, 20.0, 200.0)] * 5
    return track("a", t0, "gps", walk) + slipping("slip", t0 + 3.0, 45)


@pytest.mark.parametrize("disorder", ["none", "within", "beyond"])
@pytest.mark.parametrize("seed", range(6))
def test_known_streams_in_every_disorder(disorder: str, seed: int) -> None:
    check_same(long_in_order_stream(), seed, disorder, dup=seed % 2 == 1)


def test_the_memo_is_used_so_the_comparison_is_not_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = transit_logic.observe

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(transit_logic, "observe", counted)
    events = long_in_order_stream()
    arrivals = [[e[2] for e in sorted(events, key=lambda e: e[1])]]
    walls = [T0.timestamp() + 3600.0]
    run(True, arrivals, walls, -1, set(), -1)
    with_memo, calls["n"] = calls["n"], 0
    run(False, arrivals, walls, -1, set(), -1)
    fresh = calls["n"]
    assert fresh == 2 * len(events)  # once at arrival, once at release
    assert with_memo < fresh - len(events) // 2  # most releases reused the arrival's answer


def test_a_restored_processor_judges_held_fixes_afresh() -> None:
    """The memo is not checkpointed: fixes held across a restore are observed again, and
    the result is the same as without the restore."""
    t0 = T0.timestamp()
    events = track("a", t0, "gps", [(1.0, 5.0, None)] * 8)
    batch = [e[2] for e in events]
    wall = t0 + 8.0  # nothing released yet: all eight are held across the restore
    kept = processor(True)
    restored = processor(True)
    out_kept, out_restored = Outputs(), Outputs()
    for p in batch:
        kept.apply(p, out_kept, wall)
        restored.apply(p, out_restored, wall)
    assert len(kept._arrived) == len(batch)
    restored = processor(True, PartitionState.loads(restored.state.dumps()))
    assert not restored._arrived
    kept.flush(wall + 600.0, out_kept)
    restored.flush(wall + 600.0, out_restored)
    assert snapshot(out_kept) == snapshot(out_restored)
    assert kept.state.dumps() == restored.state.dumps()
    assert not kept._arrived  # every entry used once and dropped


def test_now_immutable_anchor() -> None:
    """Both chains may hold the same Anchor; observe must not change one in place."""
    from streams.speed import Anchor, SpeedRules, observe

    rules = SpeedRules()
    a = Anchor(0.0, -6.99, 110.42)
    far = offset_m(-6.99, 110.42, JUMP_M, 0.0)
    b, obs = observe(a, 10.0, far[0], far[1], None, rules)
    assert obs.quality == "bad" and b is not None and b is not a
    assert (a.ts, a.lat, a.lon, a.rejected_streak) == (0.0, -6.99, 110.42, 0)
    assert b.rejected_streak == 1
    with pytest.raises(AttributeError):
        a.rejected_streak = 5  # type: ignore[misc]


def test_no_memo_entry_outlives_its_fix() -> None:
    """A held fix whose window is past the horizon when it is released (LATE at release;
    DUPLICATE likewise) returns before the memo is popped; its entry must still go, or
    entries pile up until _MAX_ARRIVED (a million) and only then are cleared."""
    t0 = T0.timestamp()
    proc, out = processor(True), Outputs()
    held = [e[2] for e in track("a", t0, "gps", [(1.0, 5.0, None)] * 8)]
    wall = t0 + 8.0
    for p in held:
        proc.apply(p, out, wall)
    assert len(proc._arrived) == len(held)  # all held: none released yet
    # A fix behind what was released, but inside the horizon, closes the windows on the
    # wall clock (the held fixes' window with them); the loop then stalls, and at the next
    # tick the held fixes are released behind the horizon (Placement.LATE).
    late = track("a", t0 - 3.0, "gps", [(0.0, 0.0, None)])[0][2]
    assert proc.apply(late, out, wall + 100.0)
    proc.tick(wall + 300.0, out)
    wall += 300.0
    proc.flush(wall + 3600.0, out)
    assert not proc.state.vehicles["a"].held.pending
    assert not proc._arrived, f"{len(proc._arrived)} entries left for fixes already released"
