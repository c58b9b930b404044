from datetime import UTC, datetime, timedelta

from connectors.brt_simulator import BrtSimulator
from schemas.alarm_rules import load_rules
from schemas.geo import offset_m
from schemas.transit import VehiclePosition
from streams.transit_logic import Outputs, PartitionState, TransitProcessor, TransitRules

RULES = TransitRules(book=load_rules())

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
S0 = T0.timestamp()  # rows carry times as seconds since the epoch
WALL = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
LATER = WALL + 10 * 86400.0  # a wall time at which every window has long closed


def pos(vehicle: str, seconds: float, north_m: float, corridor: str = "K1") -> VehiclePosition:
    lat, lon = offset_m(-6.99, 110.42, north_m, 0.0)
    return VehiclePosition(
        vehicle_id=vehicle,
        corridor=corridor,
        lat=lat,
        lon=lon,
        timestamp=T0 + timedelta(seconds=seconds),
    )


def test_windows_are_assigned_and_closed_by_the_vehicles_own_event_time() -> None:
    proc = TransitProcessor(RULES, partition=3)
    out = Outputs()
    # 36 km/h: 50 m every 5 s, for 3 minutes.
    for i in range(37):
        proc.apply(pos("b1", i * 5, i * 50.0), out, WALL)
    # Event time reached 08:03:00 -> watermark 08:02:50: minutes 0 and 1 are closed.
    starts = [row[1] for row in out.vehicle_windows]
    assert starts == [S0, S0 + 60]
    first = out.vehicle_windows[0]
    assert first[3] == 12  # positions in [08:00:00, 08:01:00)
    assert first[4] == 11  # the first fix has no speed
    assert abs(first[5] - 36.0) < 0.1 and first[7] == 0.0
    assert first[9] == 12  # version: the fixes it holds
    proc.tick(LATER, out)  # quiet for long: everything closes, the vehicle is evicted
    assert [row[1] for row in out.vehicle_windows][-1] == S0 + 180
    assert not proc.state.vehicles


def test_a_busy_vehicle_never_makes_another_vehicles_fixes_late() -> None:
    """The old per-partition watermark dropped fixes of a vehicle 30 s behind its neighbour."""
    proc = TransitProcessor(RULES, partition=0)
    out = Outputs()
    for i in range(13):
        proc.apply(pos("ahead", 30 + i * 5, i * 50.0), out, WALL)
        proc.apply(pos("behind", i * 5, i * 50.0), out, WALL)
    proc.tick(LATER, out)
    counts = {(r[0], r[1]): r[3] for r in out.vehicle_windows}
    assert counts[("behind", S0)] == 12


def test_a_quiet_vehicle_closes_only_after_window_end_plus_lateness_of_wall_time() -> None:
    proc = TransitProcessor(RULES, partition=0)
    out = Outputs()
    proc.apply(pos("b1", 20, 0.0), out, WALL)  # event time 08:00:20, window ends 08:01:00
    proc.tick(WALL + 45, out)  # clock 08:01:05, watermark 08:00:55: still open
    assert out.vehicle_windows == []
    proc.apply(pos("b1", 50, 100.0), out, WALL + 45)  # the next fix still counts
    proc.tick(WALL + 45 + 21, out)  # clock 08:01:11 -> watermark 08:01:01: closes
    assert [(r[1], r[3]) for r in out.vehicle_windows] == [(S0, 2)]


def test_seconds_over_limit_corrections_and_late_fixes() -> None:
    proc = TransitProcessor(RULES, partition=0)
    out = Outputs()
    for i in range(13):  # 72 km/h: 100 m every 5 s
        proc.apply(pos("b1", i * 5, i * 100.0), out, WALL)
    proc.apply(pos("b1", 200, 2000.0), out, WALL)  # pushes b1's watermark past minutes 0..2
    first = [r for r in out.vehicle_windows if r[1] == S0][-1]
    assert first[7] == 55.0 and first[3] == 12  # 11 intervals of 5 s over the limit
    # A fix 170 s behind: minute 0 is closed but inside the correction horizon.
    assert proc.apply(pos("b1", 2.5, 50.0), out, WALL)
    proc.tick(WALL, out)
    corrected = [r for r in out.vehicle_windows if r[1] == S0][-1]
    assert corrected[3] == 13 and corrected[9] == 13 > first[9]
    assert corrected[7] == first[7]  # counted, but its neighbours' speeds stand
    assert out.corrections == 1
    # The same late fix again: a duplicate, nothing changes.
    assert proc.apply(pos("b1", 2.5, 50.0), out, WALL)
    assert out.duplicates == 1
    # Far past the horizon: refused as late.
    proc.apply(pos("b1", 3000, 9000.0), out, WALL)
    assert not proc.apply(pos("b1", 7.5, 10.0), out, WALL)


def test_replay_in_other_batches_and_through_a_checkpoint_gives_the_same_rows() -> None:
    def feed(batches: list[list[VehiclePosition]], checkpoint_every: int | None) -> Outputs:
        out = Outputs()
        proc = TransitProcessor(RULES, 0)
        for n, batch in enumerate(batches):
            for p in batch:
                proc.apply(p, out, WALL)
            proc.tick(WALL, out)
            if checkpoint_every and n % checkpoint_every == 0:
                proc = TransitProcessor(RULES, 0, PartitionState.loads(proc.state.dumps()))
        proc.tick(LATER, out)
        return out

    sim = BrtSimulator(seed=3, buses_per_corridor=2, realtime=False, start=T0.timestamp())
    ticks = [sim.tick(T0.timestamp() + 5 * k, 5.0) for k in range(120)]
    flat = [p for t in ticks for p in t]
    one = feed([flat], None)
    many = feed(ticks, checkpoint_every=3)
    assert one.vehicle_windows == many.vehicle_windows
    assert [a.model_dump() for a in one.alarms] == [a.model_dump() for a in many.alarms]
    assert one.bad_fixes == many.bad_fixes


def test_simulated_speeding_is_found_as_one_episode_per_stretch() -> None:
    sim = BrtSimulator(seed=11, buses_per_corridor=3, realtime=False, start=T0.timestamp())
    proc = TransitProcessor(RULES, 0)
    out = Outputs()
    for k in range(240):
        for p in sim.tick(T0.timestamp() + 5 * k, 5.0):
            proc.apply(p, out, WALL)
    raised = sorted((a.entity, a.started_at.timestamp()) for a in out.alarms if a.state == "raised")
    # Fixes within the lateness of the end are still held; a stretch that began less than
    # the minimum duration before what was released cannot have raised.
    end = T0.timestamp() + 5 * 239 - RULES.lateness_s
    truth = sorted((s.vehicle_id, s.start) for s in sim.truth if s.start <= end - 20)
    assert len(raised) == len(truth) > 0
    for (vehicle, started), (tv, ts) in zip(raised, truth, strict=True):
        assert vehicle == tv and abs(started - ts) <= 5.0
    assert out.bad_fixes > 0  # the simulator's wild fixes were caught, not alarmed


def test_a_partitions_state_stays_small_with_ten_thousand_vehicles() -> None:
    """10,000 buses over 6 partitions: ~1,700 per partition, each reporting every 5 s, for
    longer than the correction horizon (the closed windows kept for corrections are the
    bulk of the state)."""
    rules = TransitRules(book=load_rules(), horizon_s=300.0)
    proc = TransitProcessor(rules, 0)
    out = Outputs()
    vehicles = 10_000 // 6
    for k in range(int((rules.horizon_s + 180) / 5)):
        for v in range(vehicles):
            lat, lon = offset_m(-6.99, 110.30 + v * 1e-4, k * 50.0, 0.0)
            proc.apply(
                VehiclePosition(vehicle_id=f"bus-{v}", corridor="K1", lat=lat, lon=lon,
                                timestamp=T0 + timedelta(seconds=k * 5 + v % 5)),
                out, WALL,
            )  # fmt: skip
        out = Outputs()
    size = len(proc.state.dumps())
    assert size < 4_000_000, f"{size / 1e6:.1f} MB"
