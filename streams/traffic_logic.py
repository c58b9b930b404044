"""Traffic: 5-minute windows per road segment (volume, mean speed, congestion against the
segment's free-flow speed) closed by event time, and congestion alarms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.spatial import Gazetteer
from schemas.traffic import SegmentRegistry, TrafficObservation
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.checkpoints import Checkpoints
from streams.metrics import LATE_EVENTS
from streams.partition import ItemPartition
from streams.pipeline import Emitted, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.validation import future_problem
from streams.windows import WindowClock, Windows

CONGESTION = "congestion"


@dataclass
class SegmentAcc:
    observations: int = 0
    volume: int = 0
    speed_weighted: float = 0.0
    speed_weight: int = 0
    occupancy_sum: float = 0.0
    occupancy_n: int = 0


@dataclass
class TrafficState:
    offset: int = -1
    clock: WindowClock = field(default_factory=lambda: WindowClock(size_s=300))
    windows: Windows[SegmentAcc] = field(default_factory=Windows)
    alarms: EngineState = field(default_factory=EngineState)


class TrafficPartition(ItemPartition[TrafficObservation]):
    model = TrafficObservation

    def __init__(self, settings: Settings, book: RuleBook, registry: SegmentRegistry,
                 gazetteer: Gazetteer, saved: bytes | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.cfg = book.traffic
        self.segments = registry.by_id()
        self.kecamatan = {
            sid: gazetteer.kecamatan.at(s.lon, s.lat) or "outside"
            for sid, s in self.segments.items()
        }
        self.state = msgspec.json.decode(saved, type=TrafficState) if saved else TrafficState()
        self.state.clock.size_s = self.cfg.window_s
        self.state.clock.lateness_s = settings.window_allowed_lateness_s
        self.alarms = AlarmEngine(book, self.state.alarms)

    def apply(
        self, ob: TrafficObservation, now: datetime, out: Emitted
    ) -> tuple[Reason, str] | None:
        if ob.segment_id not in self.segments:
            return Reason.UNKNOWN_ENTITY, f"unknown segment {ob.segment_id!r}"
        future = future_problem(ob.timestamp, now, self.settings.max_future_s)
        if future:
            return future
        ts, clock = ob.timestamp.timestamp(), self.state.clock
        if clock.is_late(ts):
            LATE_EVENTS.labels("traffic.observations").inc()
            return None
        clock.observe(ts)
        acc = self.state.windows.get(clock.start_of(ts), ob.segment_id, SegmentAcc)
        acc.observations += 1
        acc.volume += ob.vehicle_count
        if ob.mean_speed_kmh is not None:
            weight = max(ob.vehicle_count, 1)
            acc.speed_weighted += ob.mean_speed_kmh * weight
            acc.speed_weight += weight
        if ob.occupancy_pct is not None:
            acc.occupancy_sum += ob.occupancy_pct
            acc.occupancy_n += 1
        return None

    def tick(self, now: datetime, idle_for_s: float, out: Emitted) -> bool:
        clock = self.state.clock
        force = idle_for_s >= self.settings.window_idle_close_s
        if force and not self.state.windows.open:
            return False
        limit = clock.closable_before(force)
        rows: list[tuple[Any, ...]] = []
        for start, sid, acc in self.state.windows.pop_before(limit):
            seg = self.segments[sid]
            speed = acc.speed_weighted / acc.speed_weight if acc.speed_weight else None
            ratio = round(speed / seg.free_flow_kmh, 3) if speed is not None else None
            rows.append((sid, datetime.fromtimestamp(start, UTC), seg.road, self.kecamatan[sid], acc.observations,
                         acc.volume, speed, acc.occupancy_sum / acc.occupancy_n if acc.occupancy_n else None,
                         ratio, self.cfg.congestion(ratio)))  # fmt: skip
            if ratio is not None:
                context: Context = {"road": seg.road, "segment": seg.name, "kecamatan": self.kecamatan[sid],
                           "lat": seg.lat, "lon": seg.lon, "mean_speed_kmh": round(speed or 0.0, 1)}  # fmt: skip
                out.alarms.extend(
                    self.alarms.observe(CONGESTION, sid, start + clock.size_s, ratio, context)
                )
        clock.closed_before = max(clock.closed_before, limit)
        out.add(ddl.TRAFFIC_5M, ddl.TRAFFIC_COLUMNS, rows)
        return bool(rows) or force


def traffic_pipeline(
    settings: Settings, book: RuleBook, registry: SegmentRegistry, gazetteer: Gazetteer,
    sink: BaseSink, checkpoints: Checkpoints, producer: Producer,
    highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:  # fmt: skip
    def factory(key: StateKey, saved: bytes | None) -> TrafficPartition:
        return TrafficPartition(settings, book, registry, gazetteer, saved)

    return Pipeline(
        "traffic", settings, sink, checkpoints, producer, factory, highwater=highwater, clock=clock
    )
