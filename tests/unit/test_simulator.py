import logging
from collections.abc import AsyncIterator, Sequence

import pytest
from pydantic import BaseModel

from connectors.base import Source, run_source
from connectors.brt_simulator import BrtSimulator
from connectors.tally import NothingUsable
from connectors.trans_semarang_routes import CORRIDORS
from schemas.catalog import VEHICLE_POSITIONS
from schemas.settings import Settings
from tests.unit.helpers import RecordingPublisher


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

    with caplog.at_level(logging.INFO, logger="connectors.base"):
        assert await run_source(Replay(), RecordingPublisher(), progress_s=0.0) == 3  # type: ignore[arg-type]
        live = Replay()
        live.finite = False
        assert await run_source(live, RecordingPublisher(), progress_s=0.0) == 3  # type: ignore[arg-type]
    progress = [r for r in caplog.records if r.getMessage() == "source progress"]
    assert [r.events for r in progress] == [1, 2, 3]  # type: ignore[attr-defined]


class _Mixed(Source):
    """A replay of five records: two events, a skipped one and two refused."""

    name, topic, finite = "mixed", VEHICLE_POSITIONS, True

    def __init__(self, good: int = 2) -> None:
        self.good = good

    def key(self, event: BaseModel) -> str:
        return "k"

    async def batches(self, publisher: RecordingPublisher) -> AsyncIterator[Sequence[BaseModel]]:  # type: ignore[override]
        publisher.skip("trip_update")
        await publisher.dead_letter(b"x", "schema_violation", "lat: out of range", "f")
        await publisher.dead_letter(b"y", "schema_violation", "lat: out of range", "f")
        yield [_Item() for _ in range(self.good)]


class _Item(BaseModel):
    n: int = 0


async def test_a_replay_ends_with_one_summary_line_of_every_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = RecordingPublisher()
    with caplog.at_level(logging.INFO, logger="connectors.base"):
        assert await run_source(_Mixed(), publisher) == 2  # type: ignore[arg-type]
    (line,) = [r for r in caplog.records if r.getMessage().startswith("mixed finished")]
    assert line.getMessage() == (
        "mixed finished: read 5, published 2, skipped 1 (trip_update 1), "
        "dead-lettered 2 (schema_violation 2)"
    )
    assert line.dead_lettered == {"schema_violation": 2}  # type: ignore[attr-defined]
    assert line.read == 5  # type: ignore[attr-defined]


async def test_a_replay_that_publishes_nothing_fails_and_says_what_it_read() -> None:
    with pytest.raises(NothingUsable, match=r"read 3, published 0.*schema_violation 2"):
        await run_source(_Mixed(good=0), RecordingPublisher())  # type: ignore[arg-type]
