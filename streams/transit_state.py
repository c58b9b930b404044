"""Transit state and outputs: the rules, what is kept per vehicle (held fixes, anchors,
windows), a partition's state as checkpointed, and what one batch produces. The logic that
moves them is in streams/transit_logic.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from schemas.alarm_rules import RuleBook, load_rules
from schemas.alarms import Alarm
from schemas.settings import Settings
from streams.alarm_engine import EngineState
from streams.speed import Anchor, SpeedRules, UnitWatch
from streams.windows import EntityWindows, Reorder, WindowPolicy

WINDOW_S = 60


@dataclass(frozen=True)
class TransitRules:
    book: RuleBook
    speed: SpeedRules = field(default_factory=SpeedRules)
    lateness_s: float = 10.0
    horizon_s: float = 300.0
    evict_after_s: float = 6 * 3600.0

    @classmethod
    def from_settings(cls, s: Settings, book: RuleBook | None = None) -> TransitRules:
        return cls(
            book=book or load_rules(s.alarm_rules),
            speed=SpeedRules(max_plausible_kmh=s.max_plausible_speed_kmh),
            lateness_s=s.window_allowed_lateness_s,
            horizon_s=s.correction_horizon_s,
            evict_after_s=s.entity_evict_after_s,
        )

    @property
    def windows(self) -> WindowPolicy:
        return WindowPolicy(WINDOW_S, self.lateness_s, self.horizon_s)

    def limit_for(self, corridor: str) -> float:
        return self.book.transit.limit_for(corridor)


class VehicleAcc(msgspec.Struct, array_like=True, gc=False):
    corridor: str = ""
    limit_kmh: float = 0.0
    positions: int = 0
    speed_samples: int = 0
    speed_sum: float = 0.0
    max_speed: float | None = None
    seconds_over: float = 0.0


class Fix(msgspec.Struct, array_like=True, gc=False):
    """A position held until its vehicle's watermark passes it."""

    lat: float
    lon: float
    corridor: str
    reported_kmh: float | None
    ingested_at: float
    kecamatan: str
    label: str | None = None
    route_id: str | None = None
    trip_id: str | None = None
    bearing: float | None = None
    occupancy: str = ""
    source: str = ""
    # What the position row said when the fix arrived (judged against the fixes seen so
    # far); rewritten at release only if event-time order says otherwise.
    speed_written: float | None = None
    bad_written: bool = False


class VehicleState(msgspec.Struct, array_like=True):
    anchor: Anchor | None = None  # in event-time order, over released fixes
    arrival: Anchor | None = None  # in arrival order, for the row written at once
    held: Reorder[Fix] = msgspec.field(default_factory=Reorder)
    windows: EntityWindows[VehicleAcc] = msgspec.field(default_factory=EntityWindows)


@dataclass
class PartitionState:
    offset: int = -1  # last Kafka offset whose effects are in this state
    vehicles: dict[str, VehicleState] = field(default_factory=dict)
    alarms: EngineState = field(default_factory=EngineState)
    units: dict[str, UnitWatch] = field(default_factory=dict)  # by source (connector)

    def dumps(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def loads(cls, raw: bytes | str) -> PartitionState:
        return msgspec.json.decode(raw, type=cls)


@dataclass
class Outputs:
    # Rows in ClickHouse's column order; times are seconds since the epoch (stored_time).
    positions: list[tuple[Any, ...]] = field(default_factory=list)
    vehicle_windows: list[tuple[Any, ...]] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    bad_fixes: int = 0
    stale: int = 0
    corrections: int = 0
    duplicates: int = 0
    evicted: int = 0
    late: int = 0
    implausible_reported: int = 0
    unit_slips: list[tuple[str, str]] = field(default_factory=list)  # (source, verdict)

    def row_count(self) -> int:
        return len(self.positions) + len(self.vehicle_windows) + 2 * len(self.alarms)
