"""Transit logic of one Kafka partition: speed, bad fixes, overspeed alarms, 1-minute windows.

Pure: it takes validated positions and returns rows and alarm transitions. The faust
agent feeds it and persists :class:`PartitionState` (a checkpoint) together with the
offset of the last message applied, so a restarted worker continues exactly where the
rows it wrote left off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas.alarm_rules import RuleBook, load_rules
from schemas.alarms import Alarm
from schemas.settings import Settings
from schemas.transit import VehiclePosition
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.speed import Anchor, FixQuality, SpeedRules, observe
from streams.windows import WindowClock, Windows

WINDOW_S = 60
OVERSPEED = "overspeed"
# An interval longer than this says little about the time spent over the limit.
MAX_OVER_LIMIT_INTERVAL_S = 60.0


@dataclass(frozen=True)
class TransitRules:
    book: RuleBook
    speed: SpeedRules = field(default_factory=SpeedRules)
    lateness_s: float = 10.0

    @classmethod
    def from_settings(cls, s: Settings, book: RuleBook | None = None) -> TransitRules:
        return cls(
            book=book or load_rules(s.alarm_rules),
            speed=SpeedRules(max_plausible_kmh=s.max_plausible_speed_kmh),
            lateness_s=s.window_allowed_lateness_s,
        )

    def limit_for(self, corridor: str) -> float:
        return self.book.transit.limit_for(corridor)


@dataclass
class VehicleAcc:
    corridor: str = ""
    limit_kmh: float = 0.0
    positions: int = 0
    speed_samples: int = 0
    speed_sum: float = 0.0
    max_speed: float | None = None
    seconds_over: float = 0.0


@dataclass
class CorridorAcc:
    positions: int = 0
    vehicles: list[str] = field(default_factory=list)
    speed_samples: int = 0
    speed_sum: float = 0.0
    max_speed: float | None = None
    seconds_over: float = 0.0


@dataclass
class VehicleState:
    anchor: Anchor | None = None


@dataclass
class PartitionState:
    offset: int = -1  # last Kafka offset whose effects are in this state
    clock: WindowClock = field(default_factory=lambda: WindowClock(size_s=WINDOW_S))
    vehicles: dict[str, VehicleState] = field(default_factory=dict)
    vehicle_windows: Windows[VehicleAcc] = field(default_factory=Windows)
    corridor_windows: Windows[CorridorAcc] = field(default_factory=Windows)
    alarms: EngineState = field(default_factory=EngineState)

    def dumps(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def loads(cls, raw: bytes | str) -> PartitionState:
        return msgspec.json.decode(raw, type=cls)


@dataclass
class Outputs:
    positions: list[tuple[Any, ...]] = field(default_factory=list)
    vehicle_windows: list[tuple[Any, ...]] = field(default_factory=list)
    corridor_windows: list[tuple[Any, ...]] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    bad_fixes: int = 0
    late: int = 0
    stale: int = 0

    def row_count(self) -> int:
        return (
            len(self.positions)
            + len(self.vehicle_windows)
            + len(self.corridor_windows)
            + 2 * len(self.alarms)
        )


def _corridor(pos: VehiclePosition) -> str:
    return pos.corridor or pos.route_id or "unknown"


def _add_speed(acc: VehicleAcc | CorridorAcc, speed: float | None, over_s: float) -> None:
    acc.positions += 1
    acc.seconds_over += over_s
    if speed is not None:
        acc.speed_samples += 1
        acc.speed_sum += speed
        acc.max_speed = speed if acc.max_speed is None else max(acc.max_speed, speed)


class TransitProcessor:
    """All transit state of one Kafka partition."""

    def __init__(self, rules: TransitRules, partition: int, state: PartitionState | None = None):
        self.rules = rules
        self.partition = partition
        self.state = state or PartitionState()
        self.state.clock.lateness_s = rules.lateness_s
        self.alarms = AlarmEngine(rules.book, self.state.alarms)

    def apply(
        self, pos: VehiclePosition, out: Outputs, ingested_at: datetime, kecamatan: str = ""
    ) -> None:
        st = self.state
        ts = pos.ts
        corridor = _corridor(pos)
        limit = self.rules.limit_for(corridor)
        vehicle = st.vehicles.get(pos.vehicle_id)
        if vehicle is None:
            vehicle = st.vehicles[pos.vehicle_id] = VehicleState()
        vehicle.anchor, obs = observe(
            vehicle.anchor, ts, pos.lat, pos.lon, pos.speed_kmh, self.rules.speed
        )
        bad = obs.quality is FixQuality.BAD
        out.positions.append(
            (
                pos.vehicle_id,
                pos.timestamp,
                pos.label,
                pos.route_id,
                corridor,
                pos.trip_id,
                pos.lat,
                pos.lon,
                pos.bearing,
                pos.speed_kmh,
                obs.speed_kmh,
                pos.occupancy.value if pos.occupancy else "",
                pos.source,
                int(bad),
                ingested_at,
                kecamatan,
            )
        )
        if bad:
            out.bad_fixes += 1
            return
        if obs.quality is FixQuality.STALE:
            out.stale += 1
            return

        speed = obs.speed_kmh
        if speed is not None:
            context: Context = {
                "corridor": corridor,
                "route_id": pos.route_id,
                "trip_id": pos.trip_id,
                "lat": pos.lat,
                "lon": pos.lon,
                "limit_kmh": limit,
                "kecamatan": kecamatan or None,
            }
            out.alarms.extend(
                self.alarms.observe(OVERSPEED, pos.vehicle_id, ts, speed, context, base=limit)
            )

        if st.clock.is_late(ts):
            out.late += 1
            return
        st.clock.observe(ts)
        over_s = 0.0
        if speed is not None and speed > limit and obs.interval_s is not None:
            over_s = min(obs.interval_s, MAX_OVER_LIMIT_INTERVAL_S)
        start = st.clock.start_of(ts)
        vacc = st.vehicle_windows.get(start, pos.vehicle_id, VehicleAcc)
        vacc.corridor, vacc.limit_kmh = corridor, limit
        _add_speed(vacc, speed, over_s)
        cacc = st.corridor_windows.get(start, corridor, CorridorAcc)
        _add_speed(cacc, speed, over_s)
        if pos.vehicle_id not in cacc.vehicles:
            cacc.vehicles.append(pos.vehicle_id)

    def close_windows(self, out: Outputs, force: bool = False) -> None:
        """Emit every window the watermark has passed (all open ones when ``force``)."""
        clock = self.state.clock
        limit = clock.closable_before(force)
        for start, vid, v in self.state.vehicle_windows.pop_before(limit):
            out.vehicle_windows.append(
                (
                    vid,
                    datetime.fromtimestamp(start, UTC),
                    v.corridor,
                    v.positions,
                    v.speed_samples,
                    v.speed_sum / v.speed_samples if v.speed_samples else None,
                    v.max_speed,
                    v.seconds_over,
                    v.limit_kmh,
                )
            )
        for start, corridor, c in self.state.corridor_windows.pop_before(limit):
            out.corridor_windows.append(
                (
                    corridor,
                    datetime.fromtimestamp(start, UTC),
                    self.partition,
                    c.positions,
                    len(c.vehicles),
                    c.speed_samples,
                    c.speed_sum,
                    c.max_speed,
                    c.seconds_over,
                )
            )
        clock.closed_before = max(clock.closed_before, limit)
        if clock.max_ts is not None:
            out.alarms.extend(self.alarms.sweep(clock.max_ts))

    def has_open_windows(self) -> bool:
        return bool(self.state.vehicle_windows.open or self.state.corridor_windows.open)
