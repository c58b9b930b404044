"""Reported speeds as real feeds send them: implausible ones, unit slips, and fixes at
(0, 0) (issue: real feeds read right)."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from pydantic import ValidationError

from schemas.alarm_rules import load_rules
from schemas.deadletter import Reason
from schemas.geo import offset_m
from schemas.settings import Settings
from schemas.transit import VehiclePosition
from streams.pipeline import Emitted, Message
from streams.speed import UNIT_MIN_SAMPLES, UnitWatch
from streams.transit_logic import Outputs, PartitionState, TransitProcessor, TransitRules
from streams.transit_stream import TransitPartition

RULES = TransitRules(book=load_rules())
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
WALL = T0.timestamp() + 3600
LATER = WALL + 10 * 86400.0


def fix(vid: str, i: int, kmh: float, reported: float | None, source: str) -> VehiclePosition:
    """The i-th fix of a bus moving north at ``kmh``, one fix every 5 s."""
    lat, lon = offset_m(-6.99, 110.42, i * kmh / 3.6 * 5, 0.0)
    return VehiclePosition(vehicle_id=vid, corridor="K1", lat=lat, lon=lon, speed_kmh=reported,
                           timestamp=T0 + timedelta(seconds=5 * i), source=source)  # fmt: skip


def speeds(out: Outputs) -> dict[tuple[str, datetime], float | None]:
    """Each position's speed as finally written (a later row replaces an earlier one)."""
    return {(r[0], datetime.fromtimestamp(r[1], UTC)): r[10] for r in out.positions}


def test_a_reported_speed_above_the_plausible_limit_is_not_used() -> None:
    proc = TransitProcessor(RULES, partition=0)
    out = Outputs()
    for i in range(10):
        # 680 km/h reported (km/h put into m/s and multiplied again) at a true 40 km/h.
        proc.apply(fix("b1", i, 40.0, 680.0 if i == 5 else 40.0, "feed"), out, WALL)
    proc.tick(LATER, out)
    written = speeds(out)[("b1", T0 + timedelta(seconds=25))]
    assert written == pytest.approx(40.0, rel=0.01)
    assert out.implausible_reported == 1
    assert not out.alarms  # no overspeed from a unit slip


def test_steady_km_h_in_an_m_s_field_is_found_and_derived_speeds_are_used() -> None:
    proc = TransitProcessor(RULES, partition=0)
    out = Outputs()
    n = UNIT_MIN_SAMPLES + 20
    for i in range(n):
        for bus in ("b1", "b2"):
            # 30 km/h true, reported 108 (3.6x): under the plausible limit, so only the
            # steady ratio gives it away.
            proc.apply(fix(bus, i, 30.0, 108.0, "slipping"), out, WALL)
            proc.apply(fix(f"ok-{bus}", i, 30.0, 31.0, "honest"), out, WALL)
    proc.tick(LATER, out)
    assert out.unit_slips == [("slipping", "x3.6")]
    written = speeds(out)
    last = T0 + timedelta(seconds=5 * (n - 1))
    assert written[("b1", last)] == pytest.approx(30.0, rel=0.01)  # derived, not 108
    assert written[("ok-b1", last)] == 31.0  # an honest source keeps its reported speed
    assert proc.state.units["honest"].verdict == ""
    # The verdict is state: it survives a checkpoint.
    restored = PartitionState.loads(proc.state.dumps())
    assert restored.units["slipping"].verdict == "x3.6"


def test_the_unit_watch_needs_steady_evidence_at_real_speeds() -> None:
    watch = UnitWatch()
    for _ in range(UNIT_MIN_SAMPLES * 2):
        assert not watch.add(3.6 * 5.0, 5.0)  # crawling: GPS noise, not evidence
    assert watch.samples == 0
    for k in range(UNIT_MIN_SAMPLES):
        # Alternating slipped and honest readings are not steady.
        watch.add(3.6 * 40.0 if k % 2 else 40.0, 40.0)
    assert watch.verdict == ""
    low = UnitWatch()
    settled = [low.add(40.0 / 3.6, 40.0) for _ in range(UNIT_MIN_SAMPLES)]
    assert settled[-1] and low.verdict == "/3.6" and sum(settled) == 1


def test_null_island_is_dead_lettered_by_the_worker_and_refused_by_connectors() -> None:
    settings = Settings(_env_file=None, service_area=None)  # type: ignore[call-arg]
    part = TransitPartition(settings, RULES, 0, None)
    good = {"vehicle_id": "b1", "lat": -6.99, "lon": 110.42, "timestamp": T0.isoformat()}
    island = {**good, "lat": 0.0, "lon": 0.0, "timestamp": (T0 + timedelta(minutes=37)).isoformat()}
    msg = Message("t", 0, 1, None, msgspec.json.encode([good, island]), ())
    out = Emitted()
    ((_, seen, rejections),) = part.handle_many([msg], datetime.now(UTC), out)
    assert seen == 2
    assert [(r.reason, r.detail) for r in rejections] == [
        (Reason.IMPOSSIBLE_VALUE, "lat 0, lon 0 (null island): the tracker had no fix")
    ]
    with pytest.raises(ValidationError, match="null island"):
        VehiclePosition.model_validate({**island})
