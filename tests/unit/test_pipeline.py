"""The pipeline's ordering and offset handling, with in-memory sink/checkpoints/producer."""

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from connectors.publisher import encode_batch
from schemas.alarms import AlarmCommand, CommandAction
from schemas.catalog import ALARMS, DEAD_LETTER, VEHICLE_POSITIONS
from schemas.settings import Settings
from schemas.transit import VehiclePosition
from streams.checkpoints import Checkpoint
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


async def test_quiet_vehicles_close_their_windows_on_the_measured_idle_time() -> None:
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    wall = [NOW]
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    pipe = transit_pipeline(settings, sink, cps, prod, clock=lambda: wall[0])
    await pipe.handle_batch(speeding_messages()[:3])  # fixes at :00, :05, :10 of the minute
    wall[0] = NOW + timedelta(seconds=55)  # the bus's clock: :65, watermark :55
    await pipe.tick()
    assert sink.rows("transit_vehicle_1m") == []
    wall[0] = NOW + timedelta(seconds=61)  # watermark :61: the minute has closed
    await pipe.tick()
    assert [r[3] for r in sink.rows("transit_vehicle_1m")] == [3]


async def test_state_is_loaded_at_assignment_so_restored_windows_close_without_new_messages() -> (
    None
):
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    await make(sink, cps, prod).handle_batch(speeding_messages()[:3])
    assert sink.rows("transit_vehicle_1m") == []
    wall = [NOW]
    restarted = transit_pipeline(
        Settings(_env_file=None),
        sink,
        cps,
        prod,
        clock=lambda: wall[0],  # type: ignore[call-arg]
    )
    await restarted.assign([(TOPIC, 0), (TOPIC, 1)])
    wall[0] = NOW + timedelta(minutes=5)
    await restarted.tick()
    assert [r[3] for r in sink.rows("transit_vehicle_1m")] == [3]
    await restarted.release([(TOPIC, 0)])
    assert restarted.owned() == [(TOPIC, 1)]


async def test_an_exception_on_one_item_dead_letters_it_and_the_rest_goes_on() -> None:
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    pipe = make(sink, cps, prod)
    msgs = speeding_messages()
    await pipe.assign([(TOPIC, 0)])
    proc = pipe._processors[(TOPIC, 0)]
    original = proc.proc._fix  # type: ignore[attr-defined]
    calls = {"n": 0}

    def flaky(p: VehiclePosition, *args: object) -> object:
        calls["n"] += 1  # every position is made a held fix first, in or out of order
        if calls["n"] == 4:
            raise ZeroDivisionError("float division by zero")
        return original(p, *args)

    proc.proc._fix = flaky  # type: ignore[attr-defined]
    await pipe.handle_batch(msgs)
    letters = prod.on(DEAD_LETTER.name)
    assert [dict(r[3])["reason"] for r in letters] == [b"processing_error"]
    assert dict(letters[0][3])["detail"] == b"ZeroDivisionError: float division by zero"
    assert dict(letters[0][3])["source.offset"] == b"3"
    assert cps.saved[(TOPIC, 0)].offset == 12  # the batch went on and was checkpointed


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


async def test_a_checkpoint_of_an_older_version_starts_empty_at_its_offset() -> None:
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    cps.saved[(TOPIC, 0)] = Checkpoint(TOPIC, 0, 7, b'{"offset": 7, "clock": {"size_s": 60}}')
    pipe = make(sink, cps, prod)
    await pipe.handle_batch(speeding_messages())
    assert cps.saved[(TOPIC, 0)].offset == 12
    # Offsets up to the checkpoint were applied by the older version: not again.
    assert len(sink.rows("transit_positions")) == 5


async def test_downtime_is_not_counted_as_quiet_time_of_restored_entities() -> None:
    """A crash or rebalance leaves events waiting in Kafka: the restored buses were not
    quiet, so their held fixes must not be released ahead of the fixes still to be read."""
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    msgs = speeding_messages()
    await make(sink, cps, prod).handle_batch(msgs[:6])
    wall = [NOW + timedelta(minutes=10)]  # down ten minutes
    restarted = transit_pipeline(
        Settings(_env_file=None),
        sink,
        cps,
        prod,
        clock=lambda: wall[0],  # type: ignore[call-arg]
    )
    await restarted.assign([(TOPIC, 0)])
    await restarted.tick()
    await restarted.handle_batch(msgs[6:])
    reference = MemorySink()
    await make(reference, MemoryCheckpoints(), MemoryProducer()).handle_batch(msgs)
    speeds = {r[1]: r[10] for r in sink.rows("transit_positions")}
    assert speeds == {r[1]: r[10] for r in reference.rows("transit_positions")}
    assert all(v is not None for k, v in speeds.items() if k != min(speeds))


async def test_with_a_checkpoint_interval_rows_are_written_but_offsets_wait_for_the_state() -> None:
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    pipe = make(sink, cps, prod)
    pipe.checkpoint_every_s = 3600.0
    await pipe.assign([(TOPIC, 0)])
    await pipe.handle_batch(speeding_messages())
    assert len(sink.rows("transit_positions")) == 13
    assert cps.saves == 0 and pipe.durable_offsets() == {}
    await pipe.save_now()
    assert cps.saved[(TOPIC, 0)].offset == 12
    assert pipe.durable_offsets() == {(TOPIC, 0): 13}
    # Messages already in the checkpoint (a replay) are durable at once.
    await pipe.handle_batch(speeding_messages()[:3])
    assert pipe.durable_offsets() == {(TOPIC, 0): 13}
    await pipe.handle_batch(speeding_messages(13)[:2])
    assert pipe.durable_offsets() == {(TOPIC, 0): 13}
    # Revoking checkpoints first: the next owner starts where this state ends.
    await pipe.release([(TOPIC, 0)])
    assert cps.saved[(TOPIC, 0)].offset == 14 and pipe.durable_offsets() == {(TOPIC, 0): 15}


class GatedSink(MemorySink):
    """Stores what was added before a flush began, once the gate opens."""

    def __init__(self, fail_times: int = 0) -> None:
        super().__init__(fail_times)
        self.gate = asyncio.Event()

    async def flush(self) -> None:
        taken, self.buffer = self.buffer, []
        await self.gate.wait()
        held, self.buffer = self.buffer, taken
        try:
            await super().flush()
        finally:
            self.buffer = held + self.buffer


def stored_offsets(sink: MemorySink) -> int:
    return len(sink.rows("transit_positions"))


async def test_overlapping_flushes_count_a_batch_only_once_its_rows_are_stored() -> None:
    sink, cps, prod = GatedSink(), MemoryCheckpoints(), MemoryProducer()
    pipe = make(sink, cps, prod)
    pipe.overlap_flush, pipe.checkpoint_every_s = True, 3600.0
    await pipe.assign([(TOPIC, 0)])
    msgs = speeding_messages()
    # The next batch is handled while the rows of the one before are still on their way.
    await pipe.handle_batch(msgs[:6])
    await pipe.handle_batch(msgs[6:])
    assert stored_offsets(sink) == 0 and pipe.durable_offsets() == {}
    sink.gate.set()
    await pipe.save_now()  # waits for the stored rows, then checkpoints
    assert stored_offsets(sink) == 13
    assert cps.saved[(TOPIC, 0)].offset == 12 and pipe.durable_offsets() == {(TOPIC, 0): 13}


async def test_with_overlapping_flushes_a_checkpoint_never_runs_ahead_of_stored_rows() -> None:
    sink, cps, prod = GatedSink(), MemoryCheckpoints(), MemoryProducer()
    pipe = make(sink, cps, prod)
    pipe.overlap_flush, pipe.checkpoint_every_s = True, 0.0  # a checkpoint due every batch
    sink.gate.set()
    msgs = speeding_messages()
    for i in range(0, 13, 3):
        await pipe.handle_batch(msgs[i : i + 3])
        saved = cps.saved.get((TOPIC, 0))
        # Every fix the checkpointed state has taken is in the table.
        assert saved is None or saved.offset < stored_offsets(sink)
    await pipe.save_now()
    assert cps.saved[(TOPIC, 0)].offset == 12 == stored_offsets(sink) - 1


async def test_a_failed_overlapping_flush_stops_the_next_batch_and_saves_nothing() -> None:
    sink, cps, prod = GatedSink(fail_times=1), MemoryCheckpoints(), MemoryProducer()
    pipe = make(sink, cps, prod)
    pipe.overlap_flush, pipe.checkpoint_every_s = True, 0.0
    sink.gate.set()
    msgs = speeding_messages()
    await pipe.handle_batch(msgs[:6])  # its flush fails in the background
    with pytest.raises(RuntimeError):
        # The checkpoint is written behind the stream: the failure stops the pipeline once
        # the flush has run, a batch or two later, never silently.
        for _ in range(3):
            await pipe.handle_batch(msgs[6:])
    assert cps.saves == 0 and pipe.durable_offsets() == {}
    await pipe.save_now()  # a stop after the failure saves nothing either
    assert cps.saves == 0


async def test_a_command_the_sender_may_not_give_is_dead_lettered_as_forbidden() -> None:
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    pipe = make(sink, cps, prod)
    await pipe.handle_batch(speeding_messages())
    raised = orjson.loads(prod.on(ALARMS.name)[0][2])
    clear = AlarmCommand(alarm_id=raised["id"], action=CommandAction.CLEAR, by="sari",
                         at=NOW, department="Dinas Lingkungan Hidup")  # fmt: skip
    origin = Message("sitroom.alarm-commands", 0, 41, None, clear.model_dump_json().encode())
    await pipe.apply_commands([clear], [origin])
    (letter,) = prod.on(DEAD_LETTER.name)
    headers = dict(letter[3])
    assert headers["reason"] == b"forbidden" and headers["source.offset"] == b"41"
    assert b"may not clear a transit alarm" in headers["detail"]
    assert len(prod.on(ALARMS.name)) == 1  # the alarm stays raised


async def test_transit_ticks_with_its_batches_at_most_once_a_second() -> None:
    """Its vehicles with positions are advanced as they are taken; the batch's tick, which
    walks every vehicle of the partition, comes at most once a second of the pipeline's
    clock (the timer's tick goes on regardless)."""
    sink, cps, prod = MemorySink(), MemoryCheckpoints(), MemoryProducer()
    wall = [NOW]
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    pipe = transit_pipeline(settings, sink, cps, prod, clock=lambda: wall[0])
    await pipe.assign([(TOPIC, 0)])
    proc = pipe._processors[(TOPIC, 0)]
    ticks: list[datetime] = []
    real = proc.tick

    def counted(now: datetime, out: object) -> bool:
        ticks.append(now)
        return real(now, out)  # type: ignore[arg-type]

    proc.tick = counted  # type: ignore[method-assign]
    msgs = speeding_messages()
    for i, at in enumerate([0.0, 0.4, 0.9, 1.0, 1.5, 2.2]):
        wall[0] = NOW + timedelta(seconds=at)
        await pipe.handle_batch(msgs[2 * i : 2 * i + 2])
    assert [(t - NOW).total_seconds() for t in ticks] == [0.0, 1.0, 2.2]
    await pipe.tick()
    assert len(ticks) == 4
