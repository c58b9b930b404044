"""Transit on the shared pipeline: a partition of bus positions as a pipeline processor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from schemas import clickhouse_ddl as ddl
from schemas.catalog import VEHICLE_POSITIONS
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.spatial import gazetteer
from schemas.transit import VehiclePosition
from streams.checkpoints import Checkpoints
from streams.metrics import (
    BAD_FIXES,
    CORRECTIONS,
    DUPLICATES,
    EVICTED,
    LATE_EVENTS,
    PROCESSING_ERRORS,
    STALE_EVENTS,
)
from streams.pipeline import Emitted, Message, Pipeline, Producer, StateKey, processing_error
from streams.sink import BaseSink
from streams.transit_logic import Outputs, PartitionState, TransitProcessor, TransitRules
from streams.validation import Rejection, check_position, decode_positions

TOPIC = VEHICLE_POSITIONS.name


class TransitPartition:
    def __init__(
        self, settings: Settings, rules: TransitRules, partition: int, saved: bytes | None
    ) -> None:
        self.settings = settings
        self.gazetteer = gazetteer()
        self.proc = TransitProcessor(
            rules, partition, PartitionState.loads(saved) if saved else None
        )
        self.alarms = self.proc.alarms

    def offset(self, topic: str) -> int:
        return self.proc.state.offset

    def handle(self, msg: Message, now: datetime, out: Emitted) -> tuple[int, list[Rejection]]:
        positions, rejections = decode_positions(msg.value)
        seen = len(positions) + len(rejections)
        buf = Outputs()
        wall = now.timestamp()
        # One vectorised point-in-polygon query for the whole message.
        districts = self.gazetteer.kecamatan.many(
            [p.lon for p in positions], [p.lat for p in positions]
        )
        for pos, kecamatan in zip(positions, districts, strict=True):
            problem = check_position(
                pos, self.settings.service_area, now, self.settings.max_future_s
            )
            if problem is None:
                try:
                    if not self.proc.apply(pos, buf, wall, kecamatan or ""):
                        LATE_EVENTS.labels(TOPIC).inc()
                        problem = (Reason.LATE, self._late_detail(pos))
                except Exception as exc:
                    PROCESSING_ERRORS.labels("transit").inc()
                    problem = (Reason.PROCESSING_ERROR, processing_error(exc))
            if problem is not None:
                rejections.append(Rejection(problem[0], problem[1], pos.model_dump_json().encode()))
        self.proc.state.offset = msg.offset
        self._drain(buf, out)
        return seen, rejections

    def _late_detail(self, pos: VehiclePosition) -> str:
        return (
            f"vehicle {pos.vehicle_id}: fix at {pos.timestamp.isoformat()} is more than the "
            f"correction horizon ({self.proc.rules.horizon_s:.0f}s) behind its window's close"
        )

    def skip(self, topic: str, offset: int) -> None:
        self.proc.state.offset = offset

    def state_root(self) -> object:
        return self.proc.state

    def tick(self, now: datetime, out: Emitted) -> bool:
        buf = Outputs()
        self.proc.tick(now.timestamp(), buf)
        self._drain(buf, out)
        return bool(buf.row_count() or buf.evicted)

    def dumps(self) -> bytes:
        return self.proc.state.dumps()

    @staticmethod
    def _drain(buf: Outputs, out: Emitted) -> None:
        out.add(ddl.POSITIONS, ddl.POSITION_COLUMNS, buf.positions)
        out.add(ddl.VEHICLE_1M, ddl.VEHICLE_1M_COLUMNS, buf.vehicle_windows)
        out.alarms.extend(buf.alarms)
        BAD_FIXES.labels(TOPIC).inc(buf.bad_fixes)
        STALE_EVENTS.labels(TOPIC).inc(buf.stale)
        CORRECTIONS.labels(TOPIC).inc(buf.corrections)
        DUPLICATES.labels(TOPIC).inc(buf.duplicates)
        EVICTED.labels("transit").inc(buf.evicted)


def transit_pipeline(
    settings: Settings,
    sink: BaseSink,
    checkpoints: Checkpoints,
    producer: Producer,
    highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    rules: TransitRules | None = None,
) -> Pipeline:
    rules = rules or TransitRules.from_settings(settings)

    def factory(key: StateKey, saved: bytes | None) -> TransitPartition:
        return TransitPartition(settings, rules, key[1], saved)

    return Pipeline(
        "transit", settings, sink, checkpoints, producer, factory, highwater=highwater, clock=clock
    )
