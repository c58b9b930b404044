"""Transit rows do not depend on arrival order, batching, crashes, duplicates or replays.

The same fixes are processed five ways; every table must come out the same (the last
version of each key, as ``FINAL`` shows it)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.brt_simulator import BrtSimulator
from schemas.alarm_rules import load_rules
from schemas.transit import VehiclePosition
from streams.transit_logic import Outputs, PartitionState, TransitProcessor, TransitRules
from tests.unit.stream_orders import (
    Timed,
    batches,
    interleaved,
    last_versions,
    shuffled_within_lateness,
    with_duplicates,
)

RULES = TransitRules(book=load_rules(), lateness_s=10.0, horizon_s=600.0)
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC).timestamp()
WALL = T0 + 12 * 3600.0
END = WALL + 30 * 86400.0


def fleet(seed: int, start: float, steps: int, prefix: str = "") -> list[Timed[VehiclePosition]]:
    sim = BrtSimulator(seed=seed, buses_per_corridor=1, realtime=False, start=start)
    out = []
    for k in range(steps):
        for p in sim.tick(start + 5 * k, 5.0):
            if prefix:
                p = p.model_copy(update={"vehicle_id": prefix + p.vehicle_id})
            out.append((p.vehicle_id, p.ts, p))
    return out


def run(
    arrivals: list[list[VehiclePosition]], restore_at: set[int] | None = None
) -> dict[str, Any]:
    proc = TransitProcessor(RULES, 0)
    out = Outputs()
    for n, batch in enumerate(arrivals):
        for p in batch:
            proc.apply(p, out, WALL)
        proc.tick(WALL, out)
        if restore_at and n in restore_at:
            proc = TransitProcessor(RULES, 0, PartitionState.loads(proc.state.dumps()))
    proc.tick(END, out)
    return tables(out)


def tables(out: Outputs) -> dict[str, Any]:
    alarms = [(a.id, a.version, a.model_dump_json()) for a in out.alarms]
    return {
        "positions": last_versions(out.positions, key=lambda r: (r[0], r[1])),
        "vehicle_1m": last_versions(
            out.vehicle_windows, key=lambda r: (r[0], r[1]), version=lambda r: r[9]
        ),
        "alarms": last_versions(alarms, key=lambda r: r[0], version=lambda r: r[1]),
        "alarm_transitions": last_versions(alarms, key=lambda r: (r[0], r[1])),
    }


def only(result: dict[str, Any], prefix: str, keep: bool) -> dict[str, Any]:
    def ours(key: Any, row: tuple[Any, ...]) -> bool:
        return (prefix in str(row[0])) is keep  # vehicle id, or an alarm id naming it

    return {t: {k: r for k, r in rows.items() if ours(k, r)} for t, rows in result.items()}


def items(events: list[Timed[VehiclePosition]]) -> list[VehiclePosition]:
    return [e for _, _, e in events]


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), order=st.integers(0, 2**32))
def test_five_ways_give_the_same_rows(seed: int, order: int) -> None:
    rng = random.Random(order)
    events = fleet(seed, T0, 60)
    reference = run([items(events)])  # (a) in order, one batch
    assert reference["vehicle_1m"] and reference["positions"]

    shuffled = shuffled_within_lateness(rng, events, RULES.lateness_s)
    assert run([items(shuffled)]) == reference  # (b)

    split = batches(rng, items(shuffled))
    restore_at = {rng.randrange(len(split)) for _ in range(5)}
    assert run(split, restore_at) == reference  # (c)

    assert run([items(with_duplicates(rng, shuffled))]) == reference  # (d)

    old = fleet(seed + 1, T0 - 5 * 3600.0, 40, prefix="replay-")
    alone = run([items(old)])
    both = run([items(interleaved(rng, shuffled, old))])  # (e)
    assert only(both, "replay-", keep=False) == reference
    assert only(both, "replay-", keep=True) == alone
