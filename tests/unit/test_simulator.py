from connectors.brt_simulator import BrtSimulator
from connectors.trans_semarang_routes import CORRIDORS
from schemas.settings import Settings


def run(seed: int) -> list[tuple[str, float, float, float]]:
    sim = BrtSimulator(seed=seed, buses_per_corridor=2, realtime=False, start=1_700_000_000)
    out = []
    for k in range(50):
        out += [(p.vehicle_id, p.ts, p.lat, p.lon) for p in sim.tick(1_700_000_000 + 5 * k, 5.0)]
    return out


def test_same_seed_same_positions() -> None:
    assert run(5) == run(5)
    assert run(5) != run(6)


def test_fleet_stays_in_semarang_and_some_buses_speed() -> None:
    area = Settings(_env_file=None).service_area  # type: ignore[call-arg]
    sim = BrtSimulator(seed=1, buses_per_corridor=3, realtime=False, start=0.0)
    positions = [p for k in range(120) for p in sim.tick(5.0 * k, 5.0)]
    assert {p.corridor for p in positions} == {c.code for c in CORRIDORS}
    inside = sum(area.contains(p.lon, p.lat) for p in positions)  # type: ignore[union-attr]
    assert inside >= len(positions) * 0.99  # wild fixes may land outside, most do not
    assert sim.truth and all(75 <= s.speed_kmh <= 88 for s in sim.truth)
