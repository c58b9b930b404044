from datetime import UTC, datetime, timedelta

from connectors.brt_simulator import BrtSimulator
from schemas.alarm_rules import load_rules
from schemas.geo import offset_m
from schemas.transit import VehiclePosition
from streams.transit_logic import Outputs, PartitionState, TransitProcessor, TransitRules
from streams.windows import WindowClock

RULES = TransitRules(book=load_rules())

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def pos(vehicle: str, seconds: float, north_m: float, corridor: str = "K1") -> VehiclePosition:
    lat, lon = offset_m(-6.99, 110.42, north_m, 0.0)
    return VehiclePosition(
        vehicle_id=vehicle,
        corridor=corridor,
        lat=lat,
        lon=lon,
        timestamp=T0 + timedelta(seconds=seconds),
    )


def test_window_clock_closes_by_event_time() -> None:
    clock = WindowClock(size_s=60, lateness_s=10)
    clock.observe(1000 * 60 + 65)  # watermark 60055 -> windows before 60000 may close
    assert clock.closable_before() == 60_000
    assert clock.closable_before(force=True) == 60_120


def test_windows_are_assigned_and_closed_by_event_time() -> None:
    proc = TransitProcessor(RULES, partition=3)
    out = Outputs()
    # 36 km/h: 50 m every 5 s, for 3 minutes.
    for i in range(37):
        proc.apply(pos("b1", i * 5, i * 50.0), out, NOW)
        proc.close_windows(out)
    # Event time reached 08:03:00 -> watermark 08:02:50: minutes 0 and 1 are closed.
    starts = [row[1] for row in out.vehicle_windows]
    assert starts == [T0, T0 + timedelta(minutes=1)]
    first = out.vehicle_windows[0]
    assert first[3] == 12  # positions in [08:00:00, 08:01:00)
    assert first[4] == 11  # the first fix has no speed
    assert abs(first[5] - 36.0) < 0.1 and first[7] == 0.0
    corridor = out.corridor_windows[0]
    assert corridor[0] == "K1" and corridor[2] == 3 and corridor[3] == 12 and corridor[4] == 1
    proc.close_windows(out, force=True)
    assert [row[1] for row in out.vehicle_windows][-1] == T0 + timedelta(minutes=3)


def test_seconds_over_limit_and_late_events() -> None:
    proc = TransitProcessor(RULES, partition=0)
    out = Outputs()
    for i in range(13):  # 72 km/h: 100 m every 5 s
        proc.apply(pos("b1", i * 5, i * 100.0), out, NOW)
    proc.apply(pos("b1", 200, 2000.0), out, NOW)  # pushes the watermark past minute 0 and 1
    proc.close_windows(out)
    assert out.vehicle_windows[0][7] == 55.0  # 11 intervals of 5 s over the limit
    proc.apply(pos("b2", 30, 0.0), out, NOW)  # minute 0 is closed: late
    assert out.late == 1


def test_replay_in_other_batches_and_through_a_checkpoint_gives_the_same_rows() -> None:
    def feed(batches: list[list[VehiclePosition]], checkpoint_every: int | None) -> Outputs:
        out = Outputs()
        state: PartitionState | None = None
        proc = TransitProcessor(RULES, 0, state)
        for n, batch in enumerate(batches):
            for p in batch:
                proc.apply(p, out, NOW)
            proc.close_windows(out)
            if checkpoint_every and n % checkpoint_every == 0:
                proc = TransitProcessor(RULES, 0, PartitionState.loads(proc.state.dumps()))
        proc.close_windows(out, force=True)
        return out

    sim = BrtSimulator(seed=3, buses_per_corridor=2, realtime=False, start=T0.timestamp())
    ticks = [sim.tick(T0.timestamp() + 5 * k, 5.0) for k in range(120)]
    flat = [p for t in ticks for p in t]
    one = feed([flat], None)
    many = feed(ticks, checkpoint_every=3)
    assert one.vehicle_windows == many.vehicle_windows
    assert one.corridor_windows == many.corridor_windows
    assert [a.model_dump() for a in one.alarms] == [a.model_dump() for a in many.alarms]
    assert one.bad_fixes == many.bad_fixes


def test_simulated_speeding_is_found_as_one_episode_per_stretch() -> None:
    sim = BrtSimulator(seed=11, buses_per_corridor=3, realtime=False, start=T0.timestamp())
    proc = TransitProcessor(RULES, 0)
    out = Outputs()
    for k in range(240):
        for p in sim.tick(T0.timestamp() + 5 * k, 5.0):
            proc.apply(p, out, NOW)
    raised = sorted((a.entity, a.started_at.timestamp()) for a in out.alarms if a.state == "raised")
    end = T0.timestamp() + 5 * 239
    # A stretch that began less than the minimum duration before the end cannot have raised.
    truth = sorted((s.vehicle_id, s.start) for s in sim.truth if s.start <= end - 20)
    assert len(raised) == len(truth) > 0
    for (vehicle, started), (tv, ts) in zip(raised, truth, strict=True):
        assert vehicle == tv and abs(started - ts) <= 5.0
    assert out.bad_fixes > 0  # the simulator's wild fixes were caught, not alarmed
