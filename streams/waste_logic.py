"""Garbage trucks: kilometres (from good fixes only), geofence enter/exit, trips to the
TPA, daily totals per truck (local day), and an alarm for trucks standing too long away
from their sites."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.deadletter import Reason
from schemas.geo import haversine_m
from schemas.settings import Settings
from schemas.spatial import gazetteer
from schemas.waste import SiteKind, SiteRegistry, TruckPosition
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.checkpoints import Checkpoints
from streams.partition import ItemPartition
from streams.pipeline import Emitted, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.speed import Anchor, FixQuality, SpeedRules, observe
from streams.validation import check_point

TRUCK_IDLE = "truck_idle"


@dataclass
class Truck:
    anchor: Anchor | None = None
    day: str = ""
    km: float = 0.0
    tpa_trips: int = 0
    fixes: int = 0
    inside: list[str] = field(default_factory=list)
    still_since: float | None = None


@dataclass
class WasteState:
    offset: int = -1
    trucks: dict[str, Truck] = field(default_factory=dict)
    alarms: EngineState = field(default_factory=EngineState)


class WastePartition(ItemPartition[TruckPosition]):
    model = TruckPosition

    def __init__(
        self, settings: Settings, book: RuleBook, sites: SiteRegistry, saved: bytes | None = None
    ) -> None:
        self.settings = settings
        self.cfg = book.waste
        self.sites = sites.sites
        self.gazetteer = gazetteer()
        self.speed_rules = SpeedRules(max_plausible_kmh=settings.max_plausible_speed_kmh)
        self.state = msgspec.json.decode(saved, type=WasteState) if saved else WasteState()
        self.alarms = AlarmEngine(book, self.state.alarms)

    def order(self, items: list[TruckPosition]) -> list[TruckPosition]:
        return sorted(items, key=lambda f: f.timestamp)

    def apply(self, fix: TruckPosition, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        problem = check_point(
            fix.lon,
            fix.lat,
            fix.timestamp,
            self.settings.service_area,
            now,
            self.settings.max_future_s,
        )
        if problem is None:
            self._apply(fix, out)
        return problem

    def after(self, applied: list[TruckPosition], now: datetime, out: Emitted) -> None:
        trucks = sorted({f.truck_id for f in applied})
        out.add(ddl.TRUCK_DAILY, ddl.DAILY_COLUMNS, [self._daily(t, now) for t in trucks])

    def _daily(self, truck_id: str, now: datetime) -> tuple[Any, ...]:
        t = self.state.trucks[truck_id]
        return (
            truck_id,
            datetime.fromisoformat(t.day).date(),
            round(t.km, 3),
            t.tpa_trips,
            t.fixes,
            now,
        )

    def _apply(self, fix: TruckPosition, out: Emitted) -> None:
        t = self.state.trucks.setdefault(fix.truck_id, Truck())
        ts = fix.timestamp.timestamp()
        day = (fix.timestamp + timedelta(hours=self.cfg.timezone_offset_h)).date().isoformat()
        if day != t.day:
            t.day, t.km, t.tpa_trips, t.fixes = day, 0.0, 0, 0
        previous = t.anchor
        t.anchor, obs = observe(t.anchor, ts, fix.lat, fix.lon, fix.speed_kmh, self.speed_rules)
        if obs.quality in (FixQuality.BAD, FixQuality.STALE):
            return
        t.fixes += 1
        if obs.quality is FixQuality.OK and previous is not None and obs.interval_s is not None:
            t.km += haversine_m(previous.lat, previous.lon, fix.lat, fix.lon) / 1000
        inside = [
            s.id for s in self.sites if haversine_m(s.lat, s.lon, fix.lat, fix.lon) <= s.radius_m
        ]
        kinds = {s.id: s.kind for s in self.sites}
        rows = [
            (fix.truck_id, fix.timestamp, sid, kinds[sid].value, "exit")
            for sid in t.inside
            if sid not in inside
        ]
        for sid in inside:
            if sid not in t.inside:
                rows.append((fix.truck_id, fix.timestamp, sid, kinds[sid].value, "enter"))
                if kinds[sid] is SiteKind.TPA:
                    t.tpa_trips += 1
        t.inside = inside
        out.add(ddl.GEOFENCE_EVENTS, ddl.GEOFENCE_COLUMNS, rows)
        standing = obs.speed_kmh is not None and obs.speed_kmh < self.cfg.idle_speed_kmh
        t.still_since = (t.still_since or ts) if standing and not inside else None
        minutes = (ts - t.still_since) / 60 if t.still_since is not None else 0.0
        context: Context = {"lat": fix.lat, "lon": fix.lon}
        if minutes:
            context["kecamatan"] = self.gazetteer.kecamatan.at(fix.lon, fix.lat)
        out.alarms.extend(self.alarms.observe(TRUCK_IDLE, fix.truck_id, ts, minutes, context))


def waste_pipeline(
    settings: Settings, book: RuleBook, sites: SiteRegistry, sink: BaseSink, checkpoints: Checkpoints,
    producer: Producer, highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:  # fmt: skip
    def factory(key: StateKey, saved: bytes | None) -> WastePartition:
        return WastePartition(settings, book, sites, saved)

    return Pipeline(
        "waste", settings, sink, checkpoints, producer, factory, highwater=highwater, clock=clock
    )
