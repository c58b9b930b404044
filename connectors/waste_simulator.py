"""A deterministic simulator of the waste fleet: trucks run depot → transfer stations →
TPA Jatibarang → depot, dwelling at each site; one truck breaks down on its way for most
of an hour. The breakdown is in :attr:`WasteSimulator.truth`."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from connectors.base import TickSource
from schemas.catalog import TRUCK_POSITIONS
from schemas.geo import haversine_m
from schemas.waste import Site, SiteKind, SiteRegistry, TruckPosition

SPEED_MS = 30 / 3.6
DWELL_S = {SiteKind.DEPOT: 300.0, SiteKind.TRANSFER: 300.0, SiteKind.TPA: 600.0}


@dataclass(frozen=True)
class Breakdown:
    truck_id: str
    start: float
    end: float


@dataclass
class Leg:
    site: Site
    arrive: float
    leave: float


class WasteSimulator(TickSource):
    name = "waste-simulator"
    topic = TRUCK_POSITIONS

    def __init__(self, registry: SiteRegistry, seed: int = 7, trucks: int = 6, interval_s: float = 30.0,
                 start: float | None = None, duration_s: float | None = None, realtime: bool = True) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self._clock(interval_s, start, duration_s, realtime)
        self.sites = registry.sites
        depots = [s for s in self.sites if s.kind is SiteKind.DEPOT]
        transfers = [s for s in self.sites if s.kind is SiteKind.TRANSFER]
        tpa = next(s for s in self.sites if s.kind is SiteKind.TPA)
        self.plans: dict[str, list[Leg]] = {}
        for n in range(trucks):
            depot = depots[n % len(depots)]
            route = [depot, *self.rng.sample(transfers, len(transfers)), tpa, depot]
            t = self.start + self.rng.uniform(0, 600)
            legs = []
            for i, site in enumerate(route):
                if i:
                    prev = route[i - 1]
                    t += haversine_m(prev.lat, prev.lon, site.lat, site.lon) / SPEED_MS
                legs.append(Leg(site, t, t + DWELL_S[site.kind]))
                t += DWELL_S[site.kind]
            self.plans[f"DLH-{n + 1:02d}"] = legs
        first_truck = next(iter(self.plans))
        leg = self.plans[first_truck][1]  # breaks down before reaching its first transfer station
        self.truth = [Breakdown(first_truck, leg.arrive - 120, leg.arrive - 120 + 3000)]

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, TruckPosition)
        return event.truck_id

    def where(self, truck_id: str, t: float) -> tuple[float, float, float]:
        """(lat, lon, speed km/h) of a truck at time t."""
        legs = self.plans[truck_id]
        for bd in self.truth:
            if bd.truck_id == truck_id and bd.start <= t < bd.end:
                t = bd.start
                lat, lon, _ = self.where_unbroken(legs, t)
                return lat, lon, 0.0
        for bd in self.truth:
            if bd.truck_id == truck_id and t >= bd.end:
                t -= bd.end - bd.start  # the rest of the day runs late
        return self.where_unbroken(legs, t)

    @staticmethod
    def where_unbroken(legs: list[Leg], t: float) -> tuple[float, float, float]:
        if t <= legs[0].leave:
            return legs[0].site.lat, legs[0].site.lon, 0.0
        for a, b in itertools.pairwise(legs):
            if t < b.arrive:
                f = (t - a.leave) / (b.arrive - a.leave)
                return (
                    a.site.lat + (b.site.lat - a.site.lat) * f,
                    a.site.lon + (b.site.lon - a.site.lon) * f,
                    SPEED_MS * 3.6,
                )
            if t <= b.leave:
                return b.site.lat, b.site.lon, 0.0
        return legs[-1].site.lat, legs[-1].site.lon, 0.0

    def tick(self, t: float) -> list[TruckPosition]:
        at = datetime.fromtimestamp(t, UTC)
        out = []
        for truck_id in self.plans:
            lat, lon, speed = self.where(truck_id, t)
            out.append(TruckPosition(truck_id=truck_id, lat=round(lat, 6), lon=round(lon, 6), timestamp=at,
                                     speed_kmh=round(speed, 1), source=self.name))  # fmt: skip
        return out

    def events_at(self, t: float) -> list[TruckPosition]:
        return self.tick(t)
