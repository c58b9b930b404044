import logging
from datetime import UTC, datetime

import msgspec
import orjson
import pytest

from connectors.traffic_simulator import TrafficSimulator, rush_factor
from schemas.alarm_rules import load_rules
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.spatial import gazetteer
from schemas.traffic import SegmentRegistry, load_segments
from streams.pipeline import Emitted, Message
from streams.traffic_logic import TrafficPartition, TrafficState

T0 = 1_780_000_200.0  # on a 5-minute boundary
NOW = datetime.fromtimestamp(T0 + 86400, UTC)
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
SEG = "PEMUDA-TUGUMUDA-BALAIKOTA"


def ob(segment: str, minute: float, count: int, speed: float | None) -> dict:  # type: ignore[type-arg]
    return {"segment_id": segment, "timestamp": datetime.fromtimestamp(T0 + minute * 60, UTC).isoformat(),
            "vehicle_count": count, "mean_speed_kmh": speed, "occupancy_pct": 20.0}  # fmt: skip


def partition(
    saved: bytes | None = None, registry: SegmentRegistry | None = None
) -> TrafficPartition:
    return TrafficPartition(SETTINGS, load_rules(), registry or load_segments(), gazetteer(), saved)


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def feed(part: TrafficPartition, items: list[dict], now: datetime = NOW) -> tuple[Emitted, list]:  # type: ignore[type-arg]
    out, rejected = Emitted(), []
    for offset, item in enumerate(items, start=part.offset("t") + 1):
        _, rej = part.handle(
            Message("traffic.observations", 0, offset, None, orjson.dumps(item)), now, out
        )
        rejected += rej
        part.tick(now, out)
    return out, rejected


def rows_of(out: Emitted) -> list[tuple]:  # type: ignore[type-arg]
    return [tuple(r) for r in out.tables.get("traffic_segment_5m", ((), []))[1]]


def test_five_minute_windows_weight_speed_by_count_and_classify_congestion() -> None:
    part = partition()
    items = [ob(SEG, m, 10 if m % 2 else 30, 40.0 if m % 2 else 20.0) for m in range(11)]
    out, rejected = feed(part, items)
    assert rejected == []
    rows = rows_of(out)
    assert len(rows) == 1  # minutes 0-4; minutes 5-9 wait for the segment's watermark
    seg, start, road, kec, n, volume, speed, occupancy, ratio, level, version = rows[0]
    assert (seg, road, n, volume, version) == (SEG, "Jl. Pemuda", 5, 110, 5)
    assert start == datetime.fromtimestamp(T0, UTC) and kec == "Semarang Tengah"
    assert abs(speed - (3 * 30 * 20 + 2 * 10 * 40) / 110) < 1e-9
    assert ratio == round(speed / 45, 3) and level == "moderate" and occupancy == 20.0


def test_a_detector_every_60_s_fills_each_window_with_five_readings() -> None:
    """The bug of `make run`: between readings the segment is quiet for 59 s, and a clock
    that jumped to the window end on idle counted four readings of five as late. Here the
    wall clock runs as it does live: each reading arrives just after its time, and the
    worker ticks every 5 s in between."""
    part, out, rejected = partition(), Emitted(), []
    for minute in range(16):
        arrival = T0 + minute * 60 + 0.3
        _, rej = part.handle(
            Message("traffic.observations", 0, minute, None,
                    orjson.dumps(ob(SEG, minute, 10, 30.0))), at(arrival), out,
        )  # fmt: skip
        rejected += rej
        for k in range(12):
            part.tick(at(arrival + 5 * k), out)
    rows = rows_of(out)
    assert rejected == []
    assert [(r[1], r[4], r[10]) for r in rows] == [
        (at(T0), 5, 5),
        (at(T0 + 300), 5, 5),
        (at(T0 + 600), 5, 5),
    ]
    # The last reading (minute 15) opened a window that closes only once its end passes.
    part.tick(at(T0 + 15 * 60 + 300 + SETTINGS.window_allowed_lateness_s + 1), out)
    assert [(r[1], r[4]) for r in rows_of(out)][-1] == (at(T0 + 900), 1)


def test_a_late_reading_corrects_its_window_and_past_the_horizon_is_dead_lettered() -> None:
    part = partition()
    out, rejected = feed(part, [ob(SEG, m, 10, 30.0) for m in (0, 1, 2, 3, 6)])
    assert [(r[4], r[10]) for r in rows_of(out)] == [(4, 4)]
    # Minute 4 arrives after its window closed: the row comes again, one reading more.
    out, rejected = feed(part, [ob(SEG, 4, 10, 30.0), ob(SEG, 4, 10, 30.0)])
    assert rejected == [] and [(r[4], r[5], r[10]) for r in rows_of(out)] == [(5, 50, 5)]
    # An hour on, minute 4 is past the correction horizon: dead-lettered, never dropped.
    out, rejected = feed(part, [ob(SEG, 70, 10, 30.0), ob(SEG, 4.5, 10, 30.0)])
    assert [r.reason for r in rejected] == [Reason.LATE]
    assert all(r[1] != at(T0) for r in rows_of(out))


def test_corrections_change_the_row_not_the_alarm_already_decided() -> None:
    part = partition()
    jam = [ob("KALIGAWE-RAYA", m, 5, 8.0) for m in (0, 1, 2, 3, 4, 5, 6, 7, 9, 11)]
    out, _ = feed(part, jam)
    assert [a.state.value for a in out.alarms] == ["raised"]
    # Free-flowing, but the second window was judged jammed when it closed.
    corrected, _ = feed(part, [ob("KALIGAWE-RAYA", 8, 60, 55.0)])
    assert [(r[1], r[4]) for r in rows_of(corrected)] == [(at(T0 + 300), 5)]
    assert corrected.alarms == []


def test_a_jam_raises_after_two_windows_and_clears() -> None:
    part = partition()
    jam = [ob("KALIGAWE-RAYA", m, 5, 8.0) for m in range(0, 20)]
    free = [ob("KALIGAWE-RAYA", m, 20, 50.0) for m in range(20, 45)]
    out, _ = feed(part, jam + free)
    alarms = [(a.state.value, a.level) for a in out.alarms]
    assert alarms[0] == ("raised", "jammed") and alarms[-1][0] == "cleared"
    assert out.alarms[0].context["road"] == "Jl. Kaligawe Raya"
    assert out.alarms[0].started_at == at(T0 + 300)  # the end of the first jammed window


def test_unknown_segments_and_impossible_values_are_rejected() -> None:
    part = partition()
    _, rejected = feed(
        part, [ob("NOPE", 0, 1, 10.0), {**ob("KALIGAWE-RAYA", 0, 1, 10.0), "vehicle_count": -1}]
    )
    assert [r.reason for r in rejected] == [Reason.UNKNOWN_ENTITY, Reason.SCHEMA]


def test_segments_close_on_their_own_clocks() -> None:
    """A segment that stopped reporting is not held open by a busy one, nor closed by it."""
    part = partition()
    items = [ob(SEG, 0, 10, 30.0), ob(SEG, 1, 10, 30.0)]
    items += [ob("KALIGAWE-RAYA", m, 10, 30.0) for m in range(12)]
    out, _ = feed(part, items)
    assert {(r[0], r[1]) for r in rows_of(out)} == {
        ("KALIGAWE-RAYA", at(T0)),
        ("KALIGAWE-RAYA", at(T0 + 300)),
    }
    # The quiet one closes once the wall time since its last reading passes its window.
    part.tick(at(NOW.timestamp() + 300), out)
    assert (SEG, at(T0), 2) in {(r[0], r[1], r[4]) for r in rows_of(out)}


def test_a_segment_removed_from_the_registry_is_dropped_at_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    part = partition()
    feed(part, [ob("KALIGAWE-RAYA", m, 5, 8.0) for m in range(12)] + [ob(SEG, 0, 5, 30.0)])
    saved = part.dumps()
    assert "congestion/KALIGAWE-RAYA" in part.state.alarms.machines
    fewer = SegmentRegistry.model_validate(
        {"segment": [s.model_dump() for s in load_segments().segments if s.id != "KALIGAWE-RAYA"]}
    )
    with caplog.at_level(logging.WARNING, logger="streams.traffic_logic"):
        restored = partition(saved, fewer)
    dropped = [r for r in caplog.records if "removed segment" in r.getMessage()]
    assert [getattr(r, "segment", None) for r in dropped] == ["KALIGAWE-RAYA"]
    assert "KALIGAWE-RAYA" not in restored.state.segments
    assert "congestion/KALIGAWE-RAYA" not in restored.state.alarms.machines
    out = Emitted()
    # Before: KeyError on the removed segment at the first tick.
    restored.tick(at(NOW.timestamp() + 3600), out)
    assert {r[0] for r in rows_of(out)} == {SEG}
    # Its open alarm is cleared, not left open in the room for ever.
    cleared = [(a.entity, a.state.value, a.reason.value) for a in out.alarms
               if a.entity == "KALIGAWE-RAYA"]  # fmt: skip
    assert cleared == [("KALIGAWE-RAYA", "cleared", "silence")]


def test_a_segment_quiet_past_the_eviction_time_is_written_then_forgotten() -> None:
    part = partition()
    out, _ = feed(part, [ob(SEG, 0, 5, 30.0), ob(SEG, 1, 5, 30.0)])
    assert rows_of(out) == [] and SEG in part.state.segments
    assert part.tick(at(NOW.timestamp() + SETTINGS.entity_evict_after_s), out)
    assert [(r[0], r[4]) for r in rows_of(out)] == [(SEG, 2)]
    assert part.state.segments == {}


def test_state_from_before_the_per_segment_clock_still_loads() -> None:
    old = b'{"offset": 41, "clock": {"size_s": 300}, "windows": {"open": []}, "alarms": {}}'
    part = partition(old)
    assert part.offset("traffic.observations") == 41 and part.state.segments == {}
    assert msgspec.json.decode(part.dumps(), type=TrafficState).offset == 41


def test_the_simulated_day_has_peaks_and_an_incident() -> None:
    morning_peak_utc = datetime(2026, 3, 2, 0, 30, tzinfo=UTC).timestamp()  # 07:30 WIB
    night_utc = datetime(2026, 3, 2, 18, 0, tzinfo=UTC).timestamp()  # 01:00 WIB
    assert rush_factor(morning_peak_utc) < 0.6 < rush_factor(night_utc)
    sim = TrafficSimulator(load_segments(), start=night_utc, realtime=False)
    inside = sim.truth[0].start + 60
    jammed = {o.segment_id: o.mean_speed_kmh for o in sim.tick(inside)}
    assert jammed["KALIGAWE-RAYA"] < 55 * 0.25 < jammed["PEMUDA-TUGUMUDA-BALAIKOTA"]
