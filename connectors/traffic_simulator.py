"""A deterministic simulator of Semarang's traffic detectors (one report per segment a minute).

Speeds follow the city's day (morning and evening peaks, in WIB) around each segment's
free-flow speed; one incident jams Jl. Kaligawe Raya for a while. Seeded; the incident is
in :attr:`TrafficSimulator.truth`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from connectors.base import TickSource
from schemas.catalog import TRAFFIC_OBSERVATIONS
from schemas.traffic import Segment, SegmentRegistry, TrafficObservation

WIB_OFFSET_H = 7


@dataclass(frozen=True)
class Incident:
    segment_id: str
    start: float
    end: float
    speed_factor: float = 0.15


def rush_factor(ts: float) -> float:
    """Share of free-flow speed at this time of day (Western Indonesian Time)."""
    hour = (ts / 3600 + WIB_OFFSET_H) % 24
    morning = math.exp(-(((hour - 7.5) / 1.0) ** 2))
    evening = math.exp(-(((hour - 17.5) / 1.2) ** 2))
    night = 1.0 if hour < 5 or hour > 22 else 0.85
    return max(0.35, night - 0.45 * max(morning, evening))


class TrafficSimulator(TickSource):
    name = "traffic-simulator"
    topic = TRAFFIC_OBSERVATIONS

    def __init__(
        self,
        registry: SegmentRegistry,
        seed: int = 7,
        interval_s: float = 60.0,
        start: float | None = None,
        duration_s: float | None = None,
        realtime: bool = True,
        incident_delay_s: float = 120.0,
        incident_s: float = 1500.0,
    ) -> None:
        self.rng = random.Random(seed)
        self._clock(interval_s, start, duration_s, realtime)
        self.segments: list[Segment] = registry.segments
        begin = self.start + incident_delay_s
        self.truth = [Incident("KALIGAWE-RAYA", begin, begin + incident_s)]

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, TrafficObservation)
        return event.segment_id

    def observe(self, seg: Segment, t: float) -> TrafficObservation:
        factor = rush_factor(t)
        for inc in self.truth:
            if inc.segment_id == seg.id and inc.start <= t < inc.end:
                factor = inc.speed_factor
        speed = max(3.0, seg.free_flow_kmh * factor * self.rng.uniform(0.92, 1.08))
        flow = (
            seg.lanes * self.interval_s / 60 * (12 + 18 * (1 - factor)) * self.rng.uniform(0.8, 1.2)
        )
        occupancy = min(95.0, 8 + 80 * (1 - factor) * self.rng.uniform(0.9, 1.1))
        return TrafficObservation(
            segment_id=seg.id, timestamp=datetime.fromtimestamp(t, UTC), vehicle_count=round(flow),
            mean_speed_kmh=round(speed, 1), occupancy_pct=round(occupancy, 1), source=self.name,
        )  # fmt: skip

    def tick(self, t: float) -> list[TrafficObservation]:
        return [self.observe(seg, t) for seg in self.segments]

    def events_at(self, t: float) -> list[TrafficObservation]:
        return self.tick(t)
