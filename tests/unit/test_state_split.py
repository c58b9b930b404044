"""Checkpoints write only the entities that changed, and state restores whole from them."""

from datetime import UTC, datetime, timedelta

import msgspec

from connectors.publisher import encode_batch
from schemas.catalog import VEHICLE_POSITIONS
from schemas.settings import Settings
from schemas.transit import VehiclePosition
from streams.checkpoints import Checkpoint
from streams.pipeline import Message, Pipeline
from streams.state_split import join, split
from streams.transit_logic import Outputs, PartitionState, TransitProcessor, TransitRules
from streams.transit_stream import transit_pipeline
from tests.unit.helpers import MemoryCheckpoints, MemoryProducer, MemorySink

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TOPIC = VEHICLE_POSITIONS.name
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


def fix(vehicle: str, seconds: float, lat: float = -6.99) -> VehiclePosition:
    return VehiclePosition(vehicle_id=vehicle, corridor="K1", lat=lat, lon=110.42,
                           timestamp=NOW - timedelta(hours=1, seconds=-seconds))  # fmt: skip


class Recording(MemoryCheckpoints):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[Checkpoint]] = []

    async def save(self, checkpoints: list[Checkpoint]) -> None:
        self.calls.append(checkpoints)
        await super().save(checkpoints)


def test_split_and_join_give_back_the_whole_state() -> None:
    proc = TransitProcessor(TransitRules.from_settings(SETTINGS), 0)
    out = Outputs()
    for i in range(30):  # three buses, one of them fast enough to open an alarm machine
        proc.apply(fix("K1-01", i * 5, -6.99 + i * 125 / 111_320), out, NOW.timestamp())
        proc.apply(fix("K1-02", i * 5), out, NOW.timestamp())
        proc.apply(fix("K1-03", i * 7), out, NOW.timestamp())
    whole = proc.state.dumps()
    head, entries = split(proc.state, ("vehicles", "alarms.machines"), proc.state.dumps)
    assert sorted(entries) == ["alarms.machines:overspeed/K1-01", "vehicles:K1-01",
                               "vehicles:K1-02", "vehicles:K1-03"]  # fmt: skip
    assert len(head) < 100 and proc.state.dumps() == whole  # the maps are put back
    restored = PartitionState.loads(join(head, entries))
    assert msgspec.json.encode(restored) == whole


async def test_a_checkpoint_holds_only_the_vehicles_that_changed_and_marks_the_gone() -> None:
    cps = Recording()
    pipe: Pipeline = transit_pipeline(SETTINGS, MemorySink(), cps, MemoryProducer(),
                                      clock=lambda: NOW)  # fmt: skip
    first = [Message(TOPIC, 0, i, None, encode_batch([fix(f"K1-0{i}", 0)])) for i in range(3)]
    await pipe.handle_batch(first)
    assert set(cps.calls[-1][0].entries) == {"vehicles:K1-00", "vehicles:K1-01", "vehicles:K1-02"}
    await pipe.handle_batch([Message(TOPIC, 0, 3, None, encode_batch([fix("K1-01", 5)]))])
    assert set(cps.calls[-1][0].entries) == {"vehicles:K1-01"}
    # A restart restores all three from the head and the entity rows.
    restarted = transit_pipeline(SETTINGS, MemorySink(), cps, MemoryProducer(), clock=lambda: NOW)
    await restarted.assign([(TOPIC, 0)])
    state = restarted._processors[(TOPIC, 0)].state_root()
    assert sorted(state.vehicles) == ["K1-00", "K1-01", "K1-02"]  # type: ignore[attr-defined]
    # Quiet past the eviction time: the vehicles leave state, and their rows say so.
    later = NOW + timedelta(seconds=SETTINGS.entity_evict_after_s + 3600)
    restarted.clock = lambda: later
    await restarted.tick()
    assert cps.calls[-1][0].entries == dict.fromkeys(
        ["vehicles:K1-00", "vehicles:K1-01", "vehicles:K1-02"]
    )
    assert cps.saved[(TOPIC, 0)].entries == {}
