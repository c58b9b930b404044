"""A deterministic simulator of the Trans Semarang BRT fleet.

Seeded: the same seed, start time and interval give the same positions. Buses run their
corridor back and forth, dwell at stops and termini, crawl through slow-downs, report with
GPS noise and the occasional wild fix, and a few of them speed on some stretches. Those
stretches are recorded in :attr:`BrtSimulator.truth` so tests can compare what the stream
detects with what really happened.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel

from connectors.base import TickSource
from connectors.trans_semarang_routes import CORRIDORS, STOP_SPACING_M, Corridor
from schemas.catalog import VEHICLE_POSITIONS
from schemas.geo import bearing_deg, haversine_m, offset_m
from schemas.transit import Occupancy, VehiclePosition

KMH = 1 / 3.6
GPS_NOISE_M = 4.0
BAD_FIX_PROBABILITY = 0.004
SPEEDER_SHARE = 0.1


@dataclass(frozen=True)
class SpeedingStretch:
    vehicle_id: str
    start: float
    end: float
    speed_kmh: float


class Polyline:
    def __init__(self, corridor: Corridor) -> None:
        self.points = corridor.waypoints
        self.cum = [0.0]
        for a, b in zip(self.points, self.points[1:], strict=False):
            self.cum.append(self.cum[-1] + haversine_m(a[0], a[1], b[0], b[1]))
        self.length = self.cum[-1]

    def at(self, s: float, direction: int) -> tuple[float, float, float]:
        """(lat, lon, bearing) at distance ``s`` from the first waypoint."""
        s = min(max(s, 0.0), self.length)
        i = min(max(bisect.bisect_right(self.cum, s) - 1, 0), len(self.points) - 2)
        a, b = self.points[i], self.points[i + 1]
        seg = self.cum[i + 1] - self.cum[i]
        f = (s - self.cum[i]) / seg if seg else 0.0
        lat, lon = a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f
        bearing = bearing_deg(a[0], a[1], b[0], b[1])
        return lat, lon, bearing if direction > 0 else (bearing + 180.0) % 360.0


@dataclass
class Bus:
    vehicle_id: str
    corridor: Corridor
    line: Polyline
    s: float
    direction: int
    cruise_kmh: float
    speeder: bool
    dwell_until: float = 0.0
    slow_until: float = 0.0
    trip: int = 1
    next_stretch: float = math.inf
    stretch: SpeedingStretch | None = None
    occupancy: Occupancy = Occupancy.MANY_SEATS_AVAILABLE
    last_stop_index: int = field(default=-1)


class BrtSimulator(TickSource):
    name = "brt-simulator"
    topic = VEHICLE_POSITIONS

    def __init__(
        self,
        seed: int = 7,
        buses_per_corridor: int = 4,
        interval_s: float = 5.0,
        start: float | None = None,
        duration_s: float | None = None,
        realtime: bool = True,
        corridors: Sequence[Corridor] = CORRIDORS,
    ) -> None:
        self.rng = random.Random(seed)
        self._clock(interval_s, start, duration_s, realtime)
        self.truth: list[SpeedingStretch] = []
        self.buses: list[Bus] = []
        for corridor in corridors:
            line = Polyline(corridor)
            for n in range(buses_per_corridor):
                self.buses.append(
                    Bus(
                        vehicle_id=f"{corridor.code}-{n + 1:02d}",
                        corridor=corridor,
                        line=line,
                        s=line.length * (n + self.rng.random() * 0.5) / buses_per_corridor,
                        direction=1 if n % 2 == 0 else -1,
                        cruise_kmh=self.rng.uniform(28.0, 42.0),
                        speeder=False,
                    )
                )
        n_speeders = max(1, round(len(self.buses) * SPEEDER_SHARE))
        for bus in self.rng.sample(self.buses, n_speeders):
            bus.speeder = True
            bus.next_stretch = self.start + self.rng.uniform(5.0, 20.0)

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, VehiclePosition)
        return event.vehicle_id

    def _speed_kmh(self, bus: Bus, t: float) -> float:
        if bus.stretch is None and t >= bus.next_stretch:
            stretch = SpeedingStretch(
                bus.vehicle_id, t, t + self.rng.uniform(45.0, 75.0), self.rng.uniform(75.0, 88.0)
            )
            bus.stretch = stretch
            self.truth.append(stretch)
        if bus.stretch is not None:
            if t < bus.stretch.end:
                return bus.stretch.speed_kmh
            bus.next_stretch = bus.stretch.end + self.rng.uniform(150.0, 300.0)
            bus.stretch = None
        if t < bus.dwell_until:
            return 0.0
        if t < bus.slow_until:
            return 10.0
        if self.rng.random() < 0.01:
            bus.slow_until = t + self.rng.uniform(30.0, 90.0)
            return 10.0
        return bus.cruise_kmh + self.rng.uniform(-3.0, 3.0)

    def _advance(self, bus: Bus, t: float, dt: float) -> None:
        speed = self._speed_kmh(bus, t)
        speeding = bus.stretch is not None
        bus.s += bus.direction * speed * KMH * dt
        if bus.s >= bus.line.length or bus.s <= 0.0:
            bus.s = min(max(bus.s, 0.0), bus.line.length)
            bus.direction = -bus.direction
            bus.trip += 1
            if not speeding:
                bus.dwell_until = t + self.rng.uniform(60.0, 120.0)
                bus.occupancy = self.rng.choice(list(Occupancy)[:4])
            return
        stop_index = int(bus.s // STOP_SPACING_M)
        if stop_index != bus.last_stop_index:
            bus.last_stop_index = stop_index
            if not speeding and bus.last_stop_index >= 0:
                bus.dwell_until = t + self.rng.uniform(15.0, 35.0)

    def _report(self, bus: Bus, t: float) -> VehiclePosition:
        lat, lon, bearing = bus.line.at(bus.s, bus.direction)
        lat, lon = offset_m(
            lat, lon, self.rng.gauss(0, GPS_NOISE_M), self.rng.gauss(0, GPS_NOISE_M)
        )
        if self.rng.random() < BAD_FIX_PROBABILITY:
            angle = self.rng.uniform(0, 2 * math.pi)
            jump = self.rng.uniform(1500.0, 4000.0)
            lat, lon = offset_m(lat, lon, jump * math.cos(angle), jump * math.sin(angle))
        return VehiclePosition(
            vehicle_id=bus.vehicle_id,
            label=f"Trans Semarang {bus.corridor.code} #{bus.vehicle_id[-2:]}",
            route_id=bus.corridor.code,
            corridor=bus.corridor.code,
            trip_id=f"{bus.vehicle_id}-{bus.trip}",
            lat=round(lat, 6),
            lon=round(lon, 6),
            bearing=round(bearing, 1),
            timestamp=datetime.fromtimestamp(round(t, 3), UTC),
            occupancy=bus.occupancy,
            source=self.name,
        )

    def tick(self, t: float, dt: float) -> list[VehiclePosition]:
        out = []
        for bus in self.buses:
            self._advance(bus, t, dt)
            out.append(self._report(bus, t))
        return out

    def events_at(self, t: float) -> list[VehiclePosition]:
        return self.tick(t, self.interval_s)
