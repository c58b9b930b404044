"""The pipeline's ordering and offset handling, with in-memory sink/checkpoints/producer."""

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from connectors.publisher import encode_batch
from schemas.alarms import AlarmCommand, CommandAction
from schemas.catalog import ALARMS, DEAD_LETTER, VEHICLE_POSITIONS
from schemas.settings import Settings
from schemas.transit import VehiclePosition
from streams.pipeline import Message, Pipeline
from streams.transit_stream import transit_pipeline
from tests.unit.helpers import MemoryCheckpoints, MemoryProducer, MemorySink

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TOPIC = VEHICLE_POSITIONS.name


def position(
    vehicle: str, seconds: float, lat: float = -6.99, lon: float = 110.42
) -> VehiclePosition:
    return VehiclePosition(
        vehicle_id=vehicle,
        corridor="K1",
        lat=lat,
        lon=lon,
        timestamp=NOW - timedelta(hours=1) + timedelta(seconds=seconds),
    )


def speeding_messages(start_offset: int = 0) -> list[Message]:
    """One bus at ~90 km/h for 60 s on K1 (limit 60), one position per message."""
    msgs = []
    for i in range(13):
        p = position("K1-01", i * 5, lat=-6.99 + i * 125 / 111_320)
        msgs.append(Message(TOPIC, 0, start_offset + i, b"K1-01", encode_batch([p])))
    return msgs


def make(sink: MemorySink, cps: MemoryCheckpoints, prod: MemoryProducer) -> Pipeline:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return transit_pipeline(settings, sink, cps, prod, clock=lambda: NOW)


async def test_rows_are_flushed_and_checkpointed_before_the_batch_returns() -> None:
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    pipe = make(sink, cps, prod)
    await pipe.handle_batch(speeding_messages())
    assert sink.pending_rows == 0 and sink.flushes == 1
    assert len(sink.rows("transit_positions")) == 13
    assert cps.saved[(TOPIC, 0)].offset == 12
    raised = [orjson.loads(r[2]) for r in prod.on(ALARMS.name)]
    assert [a["state"] for a in raised] == ["raised"]
    assert len(sink.rows("alarms")) == 1


async def test_a_failed_flush_raises_so_the_batch_is_not_acknowledged() -> None:
    sink, cps, prod = MemorySink(fail_times=1), MemoryCheckpoints(), MemoryProducer()
    pipe = make(sink, cps, prod)
    with pytest.raises(RuntimeError):
        await pipe.handle_batch(speeding_messages())
    assert cps.saves == 0  # no checkpoint past unstored rows


async def test_a_restart_replaying_committed_messages_changes_nothing() -> None:
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    msgs = speeding_messages()
    await make(sink, cps, prod).handle_batch(msgs[:8])
    # Crash after the checkpoint but before Kafka committed: the new worker sees all again.
    again = make(sink, cps, prod)
    await again.handle_batch(msgs)
    reference_sink, reference_prod = MemorySink(), MemoryProducer()
    await make(reference_sink, MemoryCheckpoints(), reference_prod).handle_batch(msgs)
    assert sink.tables == reference_sink.tables
    # Nothing of the first 8 messages was applied twice: no second "raised".
    assert [r[2] for r in prod.on(ALARMS.name)] == [r[2] for r in reference_prod.on(ALARMS.name)]


async def test_a_replay_without_checkpoint_adds_no_rows() -> None:
    sink, prod = MemorySink(), MemoryProducer()
    msgs = speeding_messages()
    await make(sink, MemoryCheckpoints(), prod).handle_batch(msgs)
    before = {t: len(sink.rows(t)) for t in sink.tables}
    await make(sink, MemoryCheckpoints(), prod).handle_batch(msgs)  # new group, full replay
    assert {t: len(sink.rows(t)) for t in sink.tables} == before


async def test_poison_is_dead_lettered_and_the_rest_processed() -> None:
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    pipe = make(sink, cps, prod)
    good = position("K2-01", 0)
    far = position("K2-02", 0, lat=52.0, lon=4.9)
    future = VehiclePosition(
        vehicle_id="K2-03", lat=-6.99, lon=110.42, timestamp=NOW + timedelta(hours=2)
    )
    batch = b"[" + b",".join([good.model_dump_json().encode(), b'{"vehicle_id": 5}']) + b"]"
    msgs = [
        Message(TOPIC, 1, 0, None, b"\x00not json"),
        Message(TOPIC, 1, 1, None, batch),
        Message(TOPIC, 1, 2, b"K2-02", far.model_dump_json().encode()),
        Message(TOPIC, 1, 3, b"K2-03", future.model_dump_json().encode()),
    ]
    await pipe.handle_batch(msgs)
    letters = prod.on(DEAD_LETTER.name)
    reasons = [dict(r[3])["reason"].decode() for r in letters]
    assert reasons == [
        "invalid_json",
        "schema_violation",
        "outside_service_area",
        "future_timestamp",
    ]
    assert letters[0][2] == b"\x00not json"  # original bytes kept
    assert dict(letters[1][3])["item.index"] == b"1"
    assert dict(letters[1][3])["source.offset"] == b"1"
    assert [r[0] for r in sink.rows("transit_positions")] == ["K2-01"]
    assert cps.saved[(TOPIC, 1)].offset == 3


async def test_idle_partitions_close_their_windows() -> None:
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    settings = Settings(_env_file=None, window_idle_close_s=0.01)  # type: ignore[call-arg]
    pipe = transit_pipeline(settings, sink, cps, prod, clock=lambda: NOW)
    await pipe.handle_batch(speeding_messages()[:3])
    assert sink.rows("transit_vehicle_1m") == []
    import asyncio

    await asyncio.sleep(0.02)
    await pipe.tick()
    assert len(sink.rows("transit_vehicle_1m")) == 1


async def test_commands_reach_the_partition_holding_the_alarm_even_after_a_restart() -> None:
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    msgs = speeding_messages()
    await make(sink, cps, prod).handle_batch(msgs[:8])
    raised = orjson.loads(prod.on(ALARMS.name)[0][2])
    ack = AlarmCommand(alarm_id=raised["id"], action=CommandAction.ACKNOWLEDGE, by="ops", at=NOW)
    # A restarted worker gets the command before it has loaded the partition's state.
    restarted = make(sink, cps, prod)
    await restarted.apply_commands([ack])
    assert len(prod.on(ALARMS.name)) == 1
    await restarted.handle_batch(msgs[8:])
    states = [orjson.loads(r[2])["state"] for r in prod.on(ALARMS.name)]
    assert states == ["raised", "acknowledged"]
    row = sink.tables["alarms"][(raised["id"],)]
    assert row[4] == "acknowledged" and row[15] == "ops"
    clear = AlarmCommand(alarm_id=raised["id"], action=CommandAction.CLEAR, by="ops", at=NOW)
    await restarted.apply_commands([clear])
    assert orjson.loads(prod.on(ALARMS.name)[-1][2])["reason"] == "manual_clear"
    assert cps.saved[(TOPIC, 0)].offset == 12
