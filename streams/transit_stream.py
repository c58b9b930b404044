"""Transit on the shared pipeline: a partition of bus positions as a pipeline processor."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from math import inf

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.catalog import VEHICLE_POSITIONS
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.spatial import gazetteer
from schemas.transit import Position
from streams.checkpoints import Checkpoints
from streams.metrics import (
    BAD_FIXES,
    CORRECTIONS,
    DUPLICATES,
    EVICTED,
    IMPLAUSIBLE_REPORTED,
    LATE_EVENTS,
    SPEED_UNIT_SLIPS,
    STALE_EVENTS,
)
from streams.pipeline import Emitted, Message, Pipeline, Producer, StateKey, processing_error
from streams.sink import BaseSink
from streams.transit_logic import Outputs, PartitionState, TransitProcessor, TransitRules
from streams.validation import (
    Rejection,
    check_position,
    decode_positions,
    decode_single_positions,
)

TOPIC = VEHICLE_POSITIONS.name
NULL_ISLAND = "lat 0, lon 0 (null island): the tracker had no fix"
log = logging.getLogger(__name__)
_slips_said: set[tuple[str, str]] = set()  # logged once per process, not per partition


class TransitPartition:
    # Checkpoints write only the vehicles and alarm machines that changed.
    entity_maps = ("vehicles", "alarms.machines")
    # Vehicles with positions in a batch are advanced as they are taken; the tick after a
    # batch is for quiet ones (2 µs each, 20 ms for 10,000), at most once a second.
    batch_tick_every_s = 1.0

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

    def handle(self, msg: Message, now: datetime, out: Emitted) -> tuple[int, Sequence[Rejection]]:
        ((_, seen, rejections),) = self.handle_many([msg], now, out)
        return seen, rejections

    def handle_many(
        self, messages: list[Message], now: datetime, out: Emitted
    ) -> list[tuple[Message, int, Sequence[Rejection]]]:
        """Apply a run of one partition's messages with one Outputs, one point-in-polygon
        query and one drain: one event per message costs about what a batch item does."""
        values = [msg.value for msg in messages]
        singles = decode_single_positions(values)
        # What each message held and what of it was refused. One event per message is the
        # common input: then no container per message is made.
        rejected: dict[int, list[Rejection]] = {}
        owner: list[int] | None = None  # the message of each position (None: the k-th)
        seen: list[int] | None = None  # events per message (None: one each)
        if singles is not None:
            positions = singles
        else:
            positions, owner, seen = [], [], []
            for m, value in enumerate(values):
                good, bad = decode_positions(value)
                positions.extend(good)
                owner.extend([m] * len(good))
                seen.append(len(good) + len(bad))
                if bad:
                    rejected[m] = bad
        districts = self.gazetteer.kecamatan.many(
            [p.lon for p in positions], [p.lat for p in positions]
        )
        buf = Outputs()
        wall = now.timestamp()
        area, max_future_s = self.settings.service_area, self.settings.max_future_s
        newest_allowed = wall + max_future_s
        # The service area's bounds, read once per batch (not a model's attributes per fix).
        west, south, east, north = (
            (area.min_lon, area.min_lat, area.max_lon, area.max_lat)
            if area is not None
            else (-inf, -inf, inf, inf)
        )
        items: list[tuple[Position, float, str]] = []
        origin: list[int] = []  # the index in positions of each item

        def refuse(k: int, pos: Position, problem: tuple[Reason, str]) -> None:
            m = k if owner is None else owner[k]
            rejected.setdefault(m, []).append(
                Rejection(problem[0], problem[1], msgspec.json.encode(pos))
            )

        for k, pos in enumerate(positions):
            problem = None
            ts = pos.timestamp.timestamp()  # Position.ts, without a property call per fix
            lon, lat = pos.lon, pos.lat
            if ts > newest_allowed or lon < west or lon > east or lat < south or lat > north:
                problem = check_position(pos, area, now, max_future_s)
            elif lat == 0.0 and lon == 0.0:
                # "Null island": what a tracker without a fix sends. With the service area
                # off (replays of other cities) nothing else would stop it, and after a gap
                # it would be the vehicle's "first" fix, beyond the jump filter's reach.
                problem = (Reason.IMPOSSIBLE_VALUE, NULL_ISLAND)
            if problem is None:
                items.append((pos, ts, districts[k] or ""))
                origin.append(k)
            else:
                refuse(k, pos, problem)
        taken = self.proc.apply_batch(items, wall, buf)
        for (pos, _, _), k, result in zip(items, origin, taken, strict=True):
            if result is True:
                continue
            if result is False:
                buf.late += 1
                problem = (Reason.LATE, self._late_detail(pos))
            else:  # counted with its dead letter
                problem = (Reason.PROCESSING_ERROR, processing_error(result))
            refuse(k, pos, problem)
        none: tuple[Rejection, ...] = ()
        results: list[tuple[Message, int, Sequence[Rejection]]] = [
            (msg, 1 if seen is None else seen[m], rejected.get(m, none))
            for m, msg in enumerate(messages)
        ]
        if messages:
            self.proc.state.offset = messages[-1].offset
        self._drain(buf, out)
        return results

    def _late_detail(self, pos: Position) -> str:
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
        LATE_EVENTS.labels(TOPIC).inc(buf.late)
        if buf.implausible_reported:
            IMPLAUSIBLE_REPORTED.labels(TOPIC).inc(buf.implausible_reported)
        for source, verdict in buf.unit_slips:
            SPEED_UNIT_SLIPS.labels(source, verdict).inc()
            if (source, verdict) not in _slips_said:
                _slips_said.add((source, verdict))
                log.warning(
                    f"source {source!r} reports speeds steadily {verdict} the derived ones "
                    "(a unit slip: km/h and m/s confused); its reported speeds are no longer "
                    "used, speeds are derived from its positions",
                    extra={"source": source, "verdict": verdict, "topic": TOPIC},
                )


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
