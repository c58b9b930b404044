"""A batch taken per vehicle run gives what taking its positions one by one gives.

``TransitProcessor.apply_batch`` takes each vehicle's positions of a batch together and,
when they are in order, releases them with one advance instead of one per fix. Against
``apply`` per position, in arrival order, it must give the same rows, windows, alarms,
counters, verdicts (late or taken) and state, for any arrival order: in order, shuffled
within and beyond the lateness, vehicles interleaved, redelivered, GPS jumps, long gaps,
reported speeds plausible or not, any batch split, ticks, a checkpoint restore, eviction.

Only the interleaving of rows may differ (a batch's rows come vehicle by vehicle, and a
run's arrival rows before its releases), so rows are compared per key, in order: a
position's rows by vehicle and time, a window's by vehicle and start, alarms by vehicle. Each vehicle has its own source here: the unit
watch counts a source's fixes across its vehicles in release order, which that
interleaving changes; where it settles is order-dependent by nature. For the same reason,
when a verdict settles inside a batch, the rows written at arrival after it (one by one)
or before the run's releases (by runs) differ, and the release corrects them: there the
rows of positions are compared once all are released, the last row of each as ``FINAL``
shows it, and held fixes' written speeds are left out of the state."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alarm_rules import load_rules
from schemas.transit import VehiclePosition
from streams.transit_logic import Outputs, PartitionState, TransitProcessor, TransitRules
from tests.unit.test_arrival_reuse import T0, Event, arrange, slipping, steps, track

RULES = {
    "multiple": TransitRules(book=load_rules(), lateness_s=10.0, horizon_s=120.0),
    # A horizon that is not a whole number of windows: closed windows are forgotten on the
    # watermark itself, not on a window boundary.
    "uneven": TransitRules(book=load_rules(), lateness_s=7.5, horizon_s=130.0),
}


def run(
    rules: TransitRules,
    batched: bool,
    arrivals: list[list[VehiclePosition]],
    walls: list[float],
    restore_at: int,
    tick_at: set[int],
    evict_at: int,
) -> tuple[list[Any], list[Any]]:
    """Feed the batches; after each, what came out so far and the state as checkpointed."""
    proc = TransitProcessor(rules, 0)
    out = Outputs()
    seen: list[Any] = []
    states: list[Any] = []
    for n, (batch, wall) in enumerate(zip(arrivals, walls, strict=True)):
        items = [(p, p.ts, "Tugu" if p.lat < -6.9 else "") for p in batch]
        if batched:
            taken: list[Any] = proc.apply_batch(items, wall, out)
        else:
            taken = [proc.apply(p, out, wall, kec, ts) for p, ts, kec in items]
        if n in tick_at:
            proc.tick(wall, out)
        if n == evict_at:
            proc.tick(wall + rules.evict_after_s + 1.0, out)
        if n == restore_at:
            proc = TransitProcessor(rules, 0, PartitionState.loads(proc.state.dumps()))
        seen.append((taken, per_key(out, final=False)))
        states.append(comparable(proc.state, bool(out.unit_slips)))
    proc.tick(walls[-1] + 30.0, out)
    proc.flush(walls[-1] + 2 * rules.evict_after_s, out)
    seen.append(per_key(out, final=True))
    states.append(comparable(proc.state, bool(out.unit_slips)))
    return seen, states


def comparable(state: PartitionState, slipped: bool) -> Any:
    # Decoded, so dict order aside (a machine is made when its vehicle's fixes are released).
    decoded = msgspec.json.decode(state.dumps())
    if slipped:
        for vehicle in decoded["vehicles"].values():
            for _, fix in vehicle[2][0]:  # held: (ts, fix)
                del fix[-2:]  # speed_written, bad_written
    return decoded


def per_key(out: Outputs, final: bool) -> tuple[Any, ...]:
    rows: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in out.positions:
        if not out.unit_slips:
            rows["position", r[0], r[1]].append(r)
        elif final:
            rows["position", r[0], r[1]][:] = [r]
    for r in out.vehicle_windows:
        rows["window", r[0], r[1]].append(r)
    for a in out.alarms:
        rows["alarm", a.entity].append(a.model_dump())
    counters = (out.bad_fixes, out.stale, out.corrections, out.duplicates, out.evicted,
                out.late, out.implausible_reported, sorted(out.unit_slips))  # fmt: skip
    return dict(rows), counters


def check_same(
    rules: TransitRules, events: list[Event], seed: int, disorder: str, dup: bool
) -> None:
    rng = random.Random(seed)
    arrivals, walls = arrange(rng, events, disorder, dup)
    n = len(arrivals)
    restore_at = rng.randrange(n) if rng.random() < 0.5 else -1
    tick_at = {i for i in range(n) if rng.random() < 0.4}
    evict_at = rng.randrange(n) if rng.random() < 0.2 else -1
    plan = (arrivals, walls, restore_at, tick_at, evict_at)
    one_by_one, states = run(rules, False, *plan)
    by_runs, states_runs = run(rules, True, *plan)
    for k, (a, b) in enumerate(zip(one_by_one, by_runs, strict=True)):
        assert a == b, f"outputs differ after batch {k}"
    assert states == states_runs


@settings(max_examples=300, deadline=None)
@given(
    walks=st.lists(steps, min_size=1, max_size=4),
    starts=st.lists(st.floats(0.0, 90.0), min_size=4, max_size=4),
    slip=st.one_of(st.just(0), st.integers(31, 60)),
    rules=st.sampled_from(sorted(RULES)),
    disorder=st.sampled_from(["none", "none", "within", "beyond"]),
    dup=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_runs_and_one_by_one_give_the_same_everything(
    walks: list[list[tuple[float, Any, Any]]],
    starts: list[float],
    slip: int,
    rules: str,
    disorder: str,
    dup: bool,
    seed: int,
) -> None:
    t0 = T0.timestamp()
    events: list[Event] = []
    for i, walk in enumerate(walks):
        events += track(f"v{i}", t0 + starts[i], f"gps{i}", walk)
    if slip:
        events += slipping("slip", t0, slip)
    check_same(RULES[rules], events, seed, disorder, dup)


def busy_fleet() -> list[Event]:
    """Twelve buses for an hour, a fix every 5 s, some fast enough to raise alarms."""
    t0 = T0.timestamp()
    events: list[Event] = []
    for i in range(12):
        walk: list[tuple[float, Any, Any]] = [(5.0, 8.0 + 2.5 * i, None)] * 720
        events += track(f"bus{i}", t0 + i / 3, f"gps{i}", walk)
    return events


@pytest.mark.parametrize("disorder", ["none", "within", "beyond"])
@pytest.mark.parametrize("seed", range(3))
def test_a_busy_fleet_in_every_disorder(disorder: str, seed: int) -> None:
    check_same(RULES["multiple"], busy_fleet(), seed, disorder, dup=seed == 2)


def test_in_order_runs_take_the_run_path() -> None:
    """Guard for the comparison above: in order, a vehicle's run is released by one advance
    per batch, not one per fix."""
    proc = TransitProcessor(RULES["multiple"], 0)
    calls = {"n": 0}
    real = proc.advance

    def counted(*args: Any) -> None:
        calls["n"] += 1
        real(*args)

    proc.advance = counted  # type: ignore[method-assign,assignment]
    events = sorted(busy_fleet(), key=lambda e: e[1])[:1200]
    items = [(p, ts, "") for _, ts, p in events]
    taken = proc.apply_batch(items, events[-1][1] + 1.0, Outputs())
    assert taken == [True] * len(items)
    assert calls["n"] == 12  # one per bus
