from schemas.geo import offset_m
from streams.speed import Anchor, FixQuality, SpeedRules, observe

RULES = SpeedRules(max_plausible_kmh=150.0, min_interval_s=1.0, max_gap_s=300.0, reanchor_after=3)
LAT, LON = -6.99, 110.42


def north(metres: float) -> tuple[float, float]:
    return offset_m(LAT, LON, metres, 0.0)


def test_first_fix_has_no_derived_speed() -> None:
    anchor, obs = observe(None, 0.0, LAT, LON, None, RULES)
    assert obs.quality is FixQuality.FIRST and obs.speed_kmh is None
    assert anchor == Anchor(0.0, LAT, LON)


def test_speed_is_derived_from_the_previous_fix() -> None:
    anchor, _ = observe(None, 0.0, LAT, LON, None, RULES)
    lat, lon = north(100.0)  # 100 m in 5 s = 72 km/h
    anchor, obs = observe(anchor, 5.0, lat, lon, None, RULES)
    assert obs.quality is FixQuality.OK
    assert abs(obs.speed_kmh - 72.0) < 0.1  # type: ignore[operator]
    assert obs.interval_s == 5.0
    assert anchor is not None and anchor.ts == 5.0


def test_reported_speed_wins_over_derived() -> None:
    anchor, _ = observe(None, 0.0, LAT, LON, None, RULES)
    lat, lon = north(100.0)
    _, obs = observe(anchor, 5.0, lat, lon, 40.0, RULES)
    assert obs.speed_kmh == 40.0 and abs(obs.derived_kmh - 72.0) < 0.1  # type: ignore[operator]


def test_a_jump_is_a_bad_fix_and_the_next_fix_uses_the_last_good_one() -> None:
    anchor, _ = observe(None, 0.0, LAT, LON, None, RULES)
    jlat, jlon = north(3000.0)  # 3 km in 5 s: 2160 km/h
    anchor, bad = observe(anchor, 5.0, jlat, jlon, None, RULES)
    assert bad.quality is FixQuality.BAD and bad.speed_kmh is None
    assert anchor is not None and anchor.ts == 0.0
    lat, lon = north(100.0)  # 100 m in 10 s from the good anchor = 36 km/h
    _, obs = observe(anchor, 10.0, lat, lon, None, RULES)
    assert obs.quality is FixQuality.OK and abs(obs.speed_kmh - 36.0) < 0.1  # type: ignore[operator]


def test_repeated_jumps_reanchor_on_the_new_place() -> None:
    anchor, _ = observe(None, 0.0, LAT, LON, None, RULES)
    for i in range(1, 4):
        lat, lon = north(5000.0 + i * 50)
        anchor, obs = observe(anchor, 5.0 * i, lat, lon, None, RULES)
        assert obs.quality is FixQuality.BAD
    assert anchor is not None and anchor.ts == 15.0  # re-anchored after the third
    lat, lon = north(5150.0 + 50)
    _, obs = observe(anchor, 20.0, lat, lon, None, RULES)
    assert obs.quality is FixQuality.OK and obs.speed_kmh is not None and obs.speed_kmh < 50


def test_stale_and_duplicate_fixes_are_ignored() -> None:
    anchor, _ = observe(None, 10.0, LAT, LON, None, RULES)
    same, obs = observe(anchor, 10.0, LAT, LON, None, RULES)
    assert obs.quality is FixQuality.STALE and same is anchor
    _, older = observe(anchor, 5.0, LAT, LON, None, RULES)
    assert older.quality is FixQuality.STALE


def test_after_a_long_gap_speed_is_not_derived() -> None:
    anchor, _ = observe(None, 0.0, LAT, LON, None, RULES)
    lat, lon = north(20_000.0)
    _, obs = observe(anchor, 3600.0, lat, lon, None, RULES)
    assert obs.quality is FixQuality.FIRST and obs.speed_kmh is None
