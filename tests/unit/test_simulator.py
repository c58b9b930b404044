import logging
from collections.abc import AsyncIterator, Sequence

import pytest
from pydantic import BaseModel

from connectors.base import Source, run_source
from connectors.brt_simulator import BrtSimulator
from connectors.trans_semarang_routes import CORRIDORS
from schemas.catalog import VEHICLE_POSITIONS
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


async def test_a_replay_reports_progress_and_a_live_source_does_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Item(BaseModel):
        n: int = 0

    class Replay(Source):
        name, topic, finite = "replay", VEHICLE_POSITIONS, True

        def key(self, event: BaseModel) -> str:
            return "k"

        async def batches(self, publisher: object) -> AsyncIterator[Sequence[BaseModel]]:  # type: ignore[override]
            for _ in range(3):
                yield [Item()]

    class Counting:
        state = None

        async def publish(self, spec: object, batch: Sequence[BaseModel], key: object) -> int:
            return len(batch)

    with caplog.at_level(logging.INFO, logger="connectors.base"):
        assert await run_source(Replay(), Counting(), progress_s=0.0) == 3  # type: ignore[arg-type]
        live = Replay()
        live.finite = False
        assert await run_source(live, Counting(), progress_s=0.0) == 3  # type: ignore[arg-type]
    progress = [r for r in caplog.records if r.getMessage() == "source progress"]
    assert [r.events for r in progress] == [1, 2, 3]  # type: ignore[attr-defined]
