from datetime import UTC, datetime

import orjson

from connectors.traffic_simulator import TrafficSimulator, rush_factor
from schemas.alarm_rules import load_rules
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.spatial import gazetteer
from schemas.traffic import load_segments
from streams.pipeline import Emitted, Message
from streams.traffic_logic import TrafficPartition

T0 = 1_780_000_200.0  # on a 5-minute boundary
NOW = datetime.fromtimestamp(T0 + 86400, UTC)
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


def ob(segment: str, minute: float, count: int, speed: float | None) -> dict:  # type: ignore[type-arg]
    return {"segment_id": segment, "timestamp": datetime.fromtimestamp(T0 + minute * 60, UTC).isoformat(),
            "vehicle_count": count, "mean_speed_kmh": speed, "occupancy_pct": 20.0}  # fmt: skip


def partition() -> TrafficPartition:
    return TrafficPartition(SETTINGS, load_rules(), load_segments(), gazetteer())


def feed(part: TrafficPartition, items: list[dict]) -> tuple[Emitted, list]:  # type: ignore[type-arg]
    out, rejected = Emitted(), []
    for offset, item in enumerate(items, start=part.offset("t") + 1):
        _, rej = part.handle(
            Message("traffic.observations", 0, offset, None, orjson.dumps(item)), NOW, out
        )
        rejected += rej
        part.tick(NOW, 0.0, out)
    return out, rejected


def test_five_minute_windows_weight_speed_by_count_and_classify_congestion() -> None:
    part = partition()
    items = [
        ob("PEMUDA-TUGUMUDA-BALAIKOTA", m, 10 if m % 2 else 30, 40.0 if m % 2 else 20.0)
        for m in range(11)
    ]
    out, rejected = feed(part, items)
    assert rejected == []
    rows = out.tables["traffic_segment_5m"][1]
    assert len(rows) == 1  # minutes 0-4; minutes 5-9 wait for the watermark
    seg, start, road, kec, n, volume, speed, occupancy, ratio, level = rows[0]
    assert (seg, road, n, volume) == ("PEMUDA-TUGUMUDA-BALAIKOTA", "Jl. Pemuda", 5, 110)
    assert start == datetime.fromtimestamp(T0, UTC) and kec == "Semarang Tengah"
    assert abs(speed - (3 * 30 * 20 + 2 * 10 * 40) / 110) < 1e-9
    assert ratio == round(speed / 45, 3) and level == "moderate" and occupancy == 20.0


def test_a_jam_raises_after_two_windows_and_clears() -> None:
    part = partition()
    jam = [ob("KALIGAWE-RAYA", m, 5, 8.0) for m in range(0, 20)]
    free = [ob("KALIGAWE-RAYA", m, 20, 50.0) for m in range(20, 45)]
    out, _ = feed(part, jam + free)
    alarms = [(a.state.value, a.level) for a in out.alarms]
    assert alarms[0] == ("raised", "jammed") and alarms[-1][0] == "cleared"
    assert out.alarms[0].context["road"] == "Jl. Kaligawe Raya"


def test_unknown_segments_and_impossible_values_are_rejected() -> None:
    part = partition()
    _, rejected = feed(
        part, [ob("NOPE", 0, 1, 10.0), {**ob("KALIGAWE-RAYA", 0, 1, 10.0), "vehicle_count": -1}]
    )
    assert [r.reason for r in rejected] == [Reason.UNKNOWN_ENTITY, Reason.SCHEMA]


def test_the_simulated_day_has_peaks_and_an_incident() -> None:
    morning_peak_utc = datetime(2026, 3, 2, 0, 30, tzinfo=UTC).timestamp()  # 07:30 WIB
    night_utc = datetime(2026, 3, 2, 18, 0, tzinfo=UTC).timestamp()  # 01:00 WIB
    assert rush_factor(morning_peak_utc) < 0.6 < rush_factor(night_utc)
    sim = TrafficSimulator(load_segments(), start=night_utc, realtime=False)
    inside = sim.truth[0].start + 60
    jammed = {o.segment_id: o.mean_speed_kmh for o in sim.tick(inside)}
    assert jammed["KALIGAWE-RAYA"] < 55 * 0.25 < jammed["PEMUDA-TUGUMUDA-BALAIKOTA"]
