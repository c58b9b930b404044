"""Traffic: 5-minute windows per road segment (volume, mean speed, congestion against the
segment's free-flow speed) and congestion alarms.

Each segment has its own event clock (streams/windows.py): its windows close once that
clock, advanced by the wall time since the segment last reported, passes the window end
plus the allowed lateness. Detectors report every 60 s and are quiet in between, so the
clock must never jump to the end of a window that is still open: five readings belong in
each 5-minute window. A window's sums are commutative, so readings need no reordering: a
reading behind the segment's watermark but inside the correction horizon corrects its
window (the row is emitted again with a higher version); beyond the horizon it is
dead-lettered as ``late``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.alarms import Alarm
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.spatial import Gazetteer
from schemas.traffic import Segment, SegmentRegistry, TrafficObservation
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.checkpoints import Checkpoints
from streams.metrics import CORRECTIONS, DUPLICATES, EVICTED, LATE_EVENTS
from streams.partition import ItemPartition
from streams.pipeline import Emitted, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.validation import future_problem
from streams.windows import EntityWindows, Placement, Slot, WindowPolicy

CONGESTION = "congestion"
TOPIC = "traffic.observations"
log = logging.getLogger(__name__)


@dataclass
class SegmentAcc:
    observations: int = 0
    volume: int = 0
    speed_weighted: float = 0.0
    speed_weight: int = 0
    occupancy_sum: float = 0.0
    occupancy_n: int = 0

    def add(self, ob: TrafficObservation) -> None:
        self.observations += 1
        self.volume += ob.vehicle_count
        if ob.mean_speed_kmh is not None:
            weight = max(ob.vehicle_count, 1)
            self.speed_weighted += ob.mean_speed_kmh * weight
            self.speed_weight += weight
        if ob.occupancy_pct is not None:
            self.occupancy_sum += ob.occupancy_pct
            self.occupancy_n += 1


@dataclass
class TrafficState:
    offset: int = -1
    segments: dict[str, EntityWindows[SegmentAcc]] = field(default_factory=dict)
    alarms: EngineState = field(default_factory=EngineState)


def _alarm_key(segment_id: str) -> str:
    return f"{CONGESTION}/{segment_id}"


class TrafficPartition(ItemPartition[TrafficObservation]):
    model = TrafficObservation

    def __init__(self, settings: Settings, book: RuleBook, registry: SegmentRegistry,
                 gazetteer: Gazetteer, saved: bytes | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.cfg = book.traffic
        self.policy = WindowPolicy(
            self.cfg.window_s, settings.window_allowed_lateness_s, settings.correction_horizon_s
        )
        self.segments = registry.by_id()
        self.kecamatan = {
            sid: gazetteer.kecamatan.at(s.lon, s.lat) or "outside"
            for sid, s in self.segments.items()
        }
        self.state = msgspec.json.decode(saved, type=TrafficState) if saved else TrafficState()
        self.alarms = AlarmEngine(book, self.state.alarms)
        self._dropped = self._drop_removed_segments()

    def _drop_removed_segments(self) -> list[Alarm]:
        """A segment removed from the registry while its state was saved: its windows can
        no longer be described (road, free-flow speed), so they go, and an alarm it held
        open is cleared (written at the next tick), as for every domain's entities."""
        stale = set(self.state.segments) | self.alarms.entities([CONGESTION])
        cleared: list[Alarm] = []
        for sid in sorted(stale - set(self.segments)):
            windows = self.state.segments.pop(sid, None) or EntityWindows()
            log.warning(
                "traffic state of a removed segment dropped",
                extra={"segment": sid, "windows": len(windows.open) + len(windows.closed)},
            )
            cleared.extend(self.alarms.forget_entity([CONGESTION], sid, windows.clock.max_ts))
        return cleared

    def apply(
        self, ob: TrafficObservation, now: datetime, out: Emitted
    ) -> tuple[Reason, str] | None:
        if ob.segment_id not in self.segments:
            return Reason.UNKNOWN_ENTITY, f"unknown segment {ob.segment_id!r}"
        future = future_problem(ob.timestamp, now, self.settings.max_future_s)
        if future:
            return future
        windows = self.state.segments.get(ob.segment_id)
        if windows is None:
            windows = self.state.segments[ob.segment_id] = EntityWindows()
        ts = ob.timestamp.timestamp()
        placement, slot = self.policy.place(windows, ts, now.timestamp(), SegmentAcc)
        if placement is Placement.LATE:
            LATE_EVENTS.labels(TOPIC).inc()
            return Reason.LATE, (
                f"segment {ob.segment_id!r} at {ob.timestamp.isoformat()}: its window is past"
                f" the correction horizon ({self.policy.horizon_s:g} s)"
            )
        if placement is Placement.DUPLICATE or slot is None:
            DUPLICATES.labels(TOPIC).inc()
            return None
        if placement is Placement.CORRECTION:
            # Emitted again with a higher version at the next tick.
            CORRECTIONS.labels(TOPIC).inc()
        slot.acc.add(ob)
        return None

    def tick(self, now: datetime, out: Emitted) -> bool:
        """Every segment on its own clock: emit the windows it has closed or corrected, and
        evict segments quiet past the eviction time (their open windows written first)."""
        wall = now.timestamp()
        rows: list[tuple[Any, ...]] = []
        alarms: list[Alarm] = self._dropped
        changed, self._dropped = bool(self._dropped), []
        for sid in list(self.state.segments):
            windows = self.state.segments[sid]
            evict = windows.clock.idle_s(wall) >= self.settings.entity_evict_after_s
            before = (len(windows.open), len(windows.closed), windows.closed_before)
            fresh = {s for s, slot in (*windows.open.items(), *windows.closed.items())
                     if not slot.emitted}  # fmt: skip
            for start, slot in self.policy.due(windows, wall, force=evict):
                rows.append(self._row(sid, start, slot))
                if start in fresh:
                    alarms.extend(self._judge(sid, start, slot.acc))
            changed |= before != (len(windows.open), len(windows.closed), windows.closed_before)
            now_ts = windows.clock.now(wall)
            if now_ts is not None:
                # Forgets the segment's machine once it is normal and not pending.
                alarms.extend(self.alarms.sweep(now_ts, [_alarm_key(sid)]))
            if evict:
                self.alarms.drop_pending(CONGESTION, sid)
                del self.state.segments[sid]
                EVICTED.labels("traffic").inc()
                changed = True
        out.add(ddl.TRAFFIC_5M, ddl.TRAFFIC_COLUMNS, rows)
        out.alarms.extend(alarms)
        return changed or bool(rows) or bool(alarms)

    def _speed(self, acc: SegmentAcc) -> float | None:
        return acc.speed_weighted / acc.speed_weight if acc.speed_weight else None

    def _ratio(self, seg: Segment, acc: SegmentAcc) -> float | None:
        speed = self._speed(acc)
        return round(speed / seg.free_flow_kmh, 3) if speed is not None else None

    def _row(self, sid: str, start: int, slot: Slot[SegmentAcc]) -> tuple[Any, ...]:
        seg, acc = self.segments[sid], slot.acc
        ratio = self._ratio(seg, acc)
        return (sid, datetime.fromtimestamp(start, UTC), seg.road, self.kecamatan[sid],
                acc.observations, acc.volume, self._speed(acc),
                acc.occupancy_sum / acc.occupancy_n if acc.occupancy_n else None,
                ratio, self.cfg.congestion(ratio), slot.version)  # fmt: skip

    def _judge(self, sid: str, start: int, acc: SegmentAcc) -> list[Alarm]:
        """The alarm sees a window once, when it first closes, at the window's end.
        Corrections change the row, not alarms already decided: the engine takes samples
        in event-time order and later windows may already have moved it on."""
        seg, ratio = self.segments[sid], self._ratio(self.segments[sid], acc)
        if ratio is None:
            return []
        context: Context = {"road": seg.road, "segment": seg.name, "kecamatan": self.kecamatan[sid],
                            "lat": seg.lat, "lon": seg.lon,
                            "mean_speed_kmh": round(self._speed(acc) or 0.0, 1)}  # fmt: skip
        return self.alarms.observe(CONGESTION, sid, start + self.policy.size_s, ratio, context)


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
