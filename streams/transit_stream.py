"""Transit on the shared pipeline: a partition of bus positions as a pipeline processor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from schemas import clickhouse_ddl as ddl
from schemas.catalog import VEHICLE_POSITIONS
from schemas.settings import Settings
from schemas.spatial import gazetteer
from streams.checkpoints import Checkpoints
from streams.metrics import BAD_FIXES, LATE_EVENTS, STALE_EVENTS
from streams.pipeline import Emitted, Message, Pipeline, Producer, StateKey
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
        # One vectorised point-in-polygon query for the whole message.
        districts = self.gazetteer.kecamatan.many(
            [p.lon for p in positions], [p.lat for p in positions]
        )
        for pos, kecamatan in zip(positions, districts, strict=True):
            problem = check_position(
                pos, self.settings.service_area, now, self.settings.max_future_s
            )
            if problem is not None:
                rejections.append(Rejection(problem[0], problem[1], pos.model_dump_json().encode()))
            else:
                self.proc.apply(pos, buf, now, kecamatan or "")
        self.proc.state.offset = msg.offset
        self._drain(buf, out)
        return seen, rejections

    def tick(self, now: datetime, idle_for_s: float, out: Emitted) -> bool:
        # Called after every batch (idle 0: close what the watermark passed) and on a timer
        # (a partition idle long enough closes everything it holds open).
        force = idle_for_s >= self.settings.window_idle_close_s
        if force and not self.proc.has_open_windows():
            return False
        buf = Outputs()
        self.proc.close_windows(buf, force=force)
        self._drain(buf, out)
        return force

    def dumps(self) -> bytes:
        return self.proc.state.dumps()

    @staticmethod
    def _drain(buf: Outputs, out: Emitted) -> None:
        out.add(ddl.POSITIONS, ddl.POSITION_COLUMNS, buf.positions)
        out.add(ddl.VEHICLE_1M, ddl.VEHICLE_1M_COLUMNS, buf.vehicle_windows)
        out.add(ddl.CORRIDOR_1M_PART, ddl.CORRIDOR_1M_PART_COLUMNS, buf.corridor_windows)
        out.alarms.extend(buf.alarms)
        BAD_FIXES.labels(TOPIC).inc(buf.bad_fixes)
        LATE_EVENTS.labels(TOPIC).inc(buf.late)
        STALE_EVENTS.labels(TOPIC).inc(buf.stale)


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
