"""Garbage trucks: kilometres (from good fixes only), geofence enter/exit, trips to the
TPA, daily totals per truck (local day), and an alarm for trucks standing too long away
from their sites.

Each truck has its own event clock (streams/windows.py). Its fixes are held up to the
allowed lateness and released in event-time order, so the speed filter, kilometres,
geofence crossings and the idle alarm see the same sequence whatever order the feed
delivered. Each fix counts towards its own local (WIB) day: a day is a window of the
truck, kept open to corrections until the truck's watermark passes its end plus the
correction horizon, so a late fix around midnight corrects yesterday's row and never
resets it. A fix behind the released watermark is counted in its day's ``fixes`` only (its
neighbours were already judged without it); past the horizon it is dead-lettered as
late. The daily row's version is the number of distinct fixes its day holds, which only
grows, so ``ReplacingMergeTree(version)`` converges however crashes split the work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.catalog import TRUCK_POSITIONS
from schemas.deadletter import Reason
from schemas.geo import haversine_m
from schemas.settings import Settings
from schemas.spatial import gazetteer
from schemas.waste import SiteKind, SiteRegistry, TruckPosition
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.checkpoints import Checkpoints
from streams.metrics import CORRECTIONS, DUPLICATES, EVICTED, LATE_EVENTS
from streams.partition import ItemPartition
from streams.pipeline import Emitted, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.speed import Anchor, FixQuality, SpeedRules, observe
from streams.validation import check_point
from streams.windows import EntityWindows, Placement, Reorder, Slot, WindowPolicy

TRUCK_IDLE = "truck_idle"
DAY_S = 86400
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalDays(WindowPolicy):
    """Day windows that start at local midnight: ``offset_s`` east of UTC."""

    offset_s: float = 0.0

    def start_of(self, ts: float) -> int:
        return int((ts + self.offset_s) // self.size_s) * self.size_s - int(self.offset_s)


class DayAcc(msgspec.Struct, array_like=True):
    km: float = 0.0
    tpa_trips: int = 0
    fixes: int = 0  # good fixes counted (bad jumps and stale repeats are not)
    last: float = 0.0  # the newest fix placed in the day (event time)


class HeldFix(msgspec.Struct, array_like=True):
    lat: float
    lon: float
    speed_kmh: float | None


class Truck(msgspec.Struct, array_like=True):
    anchor: Anchor | None = None
    inside: list[str] = msgspec.field(default_factory=list)
    still_since: float | None = None
    held: Reorder[HeldFix] = msgspec.field(default_factory=Reorder)
    days: EntityWindows[DayAcc] = msgspec.field(default_factory=EntityWindows)


@dataclass
class WasteState:
    offset: int = -1
    trucks: dict[str, Truck] = field(default_factory=dict)
    alarms: EngineState = field(default_factory=EngineState)


@dataclass
class _FormerTruck:
    """A truck in the former state format: one running day, reset by any other day."""

    anchor: dict[str, float] | None = None
    day: str = ""
    km: float = 0.0
    tpa_trips: int = 0
    fixes: int = 0
    inside: list[str] = field(default_factory=list)
    still_since: float | None = None


@dataclass
class _FormerState:
    offset: int = -1
    trucks: dict[str, _FormerTruck] = field(default_factory=dict)
    alarms: EngineState = field(default_factory=EngineState)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class WastePartition(ItemPartition[TruckPosition]):
    model = TruckPosition

    def __init__(
        self, settings: Settings, book: RuleBook, sites: SiteRegistry, saved: bytes | None = None,
        wall: float | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.cfg = book.waste
        self.sites = sites.sites
        self.kinds = {s.id: s.kind for s in self.sites}
        self.gazetteer = gazetteer()
        self.speed_rules = SpeedRules(max_plausible_kmh=settings.max_plausible_speed_kmh)
        self.policy = LocalDays(
            DAY_S, settings.window_allowed_lateness_s, settings.correction_horizon_s,
            offset_s=self.cfg.timezone_offset_h * 3600,
        )  # fmt: skip
        self.evict_after_s = settings.entity_evict_after_s
        self.state = self._decode(saved, time.time() if wall is None else wall)
        self.alarms = AlarmEngine(book, self.state.alarms)
        for tid, t in self.state.trucks.items():
            gone = [sid for sid in t.inside if sid not in self.kinds]
            if gone:
                log.warning("sites no longer in the registry dropped from a truck's state",
                            extra={"truck": tid, "sites": gone})  # fmt: skip
                t.inside = [sid for sid in t.inside if sid in self.kinds]

    def _decode(self, saved: bytes | None, wall: float) -> WasteState:
        if not saved:
            return WasteState()
        try:
            return msgspec.json.decode(saved, type=WasteState)
        except msgspec.ValidationError:
            former = msgspec.json.decode(saved, type=_FormerState)
        # The former running day's totals seed that day's window (version 0 in the rebuilt
        # table), so new fixes add to them instead of starting from zero.
        state = WasteState(former.offset, alarms=former.alarms)
        for tid, old in former.trucks.items():
            t = state.trucks[tid] = Truck(inside=old.inside, still_since=old.still_since)
            if old.anchor is None:
                continue
            o = old.anchor
            a = t.anchor = Anchor(o["ts"], o["lat"], o["lon"], int(o.get("rejected_streak", 0)))
            t.days.clock.observe(a.ts, wall)
            t.held.released_until = a.ts
            if old.day:
                acc = DayAcc(old.km, old.tpa_trips, old.fixes, a.ts)
                t.days.open[self.policy.start_of(a.ts)] = Slot(acc)
        return state

    def order(self, items: list[TruckPosition]) -> list[TruckPosition]:
        return sorted(items, key=lambda f: f.timestamp)

    def apply(self, fix: TruckPosition, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        problem = check_point(fix.lon, fix.lat, fix.timestamp, self.settings.service_area, now,
                              self.settings.max_future_s)  # fmt: skip
        if problem is not None:
            return problem
        wall, ts = now.timestamp(), fix.timestamp.timestamp()
        t = self.state.trucks.get(fix.truck_id)
        if t is None:
            t = self.state.trucks[fix.truck_id] = Truck()
        if t.held.is_late(ts):
            return self._late(t, ts, wall)
        t.days.clock.observe(ts, wall)
        if not t.held.add(ts, HeldFix(fix.lat, fix.lon, fix.speed_kmh)):
            DUPLICATES.labels(TRUCK_POSITIONS.name).inc()
        self._advance(fix.truck_id, t, wall, out)
        return None

    def _late(self, t: Truck, ts: float, wall: float) -> tuple[Reason, str] | None:
        """Behind the released watermark: counted in its day's fixes (no kilometres, no
        geofence crossing, no alarm), or late when its day is past the correction horizon."""
        wm = self.policy.watermark(t.days.clock, wall)
        end = self.policy.start_of(ts) + DAY_S
        # The horizon is checked here too: a closed day is only forgotten once the next
        # one closes, and its corrections must not depend on when that happens.
        placement, slot = (
            (Placement.LATE, None)
            if wm is not None and end + self.policy.horizon_s <= wm
            else self.policy.place(t.days, ts, wall, DayAcc)
        )
        if placement is Placement.LATE:
            LATE_EVENTS.labels(TRUCK_POSITIONS.name).inc()
            return (
                Reason.LATE,
                f"fix at {_dt(ts).isoformat()}: its day is past the correction horizon",
            )
        if placement is Placement.DUPLICATE or slot is None:
            DUPLICATES.labels(TRUCK_POSITIONS.name).inc()
            return None
        slot.acc.fixes += 1
        slot.acc.last = max(slot.acc.last, ts)
        CORRECTIONS.labels(TRUCK_POSITIONS.name).inc()
        return None

    def _advance(self, tid: str, t: Truck, wall: float, out: Emitted) -> bool:
        """Release the fixes the truck's watermark has passed, in event-time order."""
        released = t.held.release(self.policy.watermark(t.days.clock, wall))
        for ts, held in released:
            self._release(tid, t, ts, held, wall, out)
        return bool(released)

    def _release(
        self, tid: str, t: Truck, ts: float, f: HeldFix, wall: float, out: Emitted
    ) -> None:
        placement, slot = self.policy.place(t.days, ts, wall, DayAcc)
        if placement is Placement.DUPLICATE or slot is None:
            return
        day = slot.acc
        day.last = max(day.last, ts)
        previous = t.anchor
        t.anchor, obs = observe(t.anchor, ts, f.lat, f.lon, f.speed_kmh, self.speed_rules)
        if obs.quality in (FixQuality.BAD, FixQuality.STALE):
            return
        day.fixes += 1
        if obs.quality is FixQuality.OK and previous is not None and obs.interval_s is not None:
            day.km += haversine_m(previous.lat, previous.lon, f.lat, f.lon) / 1000
        inside = [s.id for s in self.sites if haversine_m(s.lat, s.lon, f.lat, f.lon) <= s.radius_m]
        at = _dt(ts)
        rows = [
            (tid, at, sid, self.kinds[sid].value, "exit") for sid in t.inside if sid not in inside
        ]
        for sid in inside:
            if sid not in t.inside:
                rows.append((tid, at, sid, self.kinds[sid].value, "enter"))
                day.tpa_trips += self.kinds[sid] is SiteKind.TPA
        t.inside = inside
        out.add(ddl.GEOFENCE_EVENTS, ddl.GEOFENCE_COLUMNS, rows)
        standing = obs.speed_kmh is not None and obs.speed_kmh < self.cfg.idle_speed_kmh
        t.still_since = (t.still_since or ts) if standing and not inside else None
        minutes = (ts - t.still_since) / 60 if t.still_since is not None else 0.0
        context: Context = {"lat": f.lat, "lon": f.lon}
        if minutes:
            context["kecamatan"] = self.gazetteer.kecamatan.at(f.lon, f.lat)
        out.alarms.extend(self.alarms.observe(TRUCK_IDLE, tid, ts, minutes, context))

    def _emit(self, tid: str, t: Truck, wall: float, out: Emitted, force: bool = False) -> bool:
        """Write the days that changed: the running ones (live totals) and the ones that
        closed or were corrected."""
        changed: list[tuple[int, Slot[DayAcc]]] = []
        for start in sorted(t.days.open):
            slot = t.days.open[start]
            if slot.emitted != slot.version:
                slot.emitted = slot.version
                changed.append((start, slot))
        changed += self.policy.due(t.days, wall, force)
        offset = int(self.policy.offset_s)
        rows = [
            (tid, _dt(start + offset).date(), round(s.acc.km, 3), s.acc.tpa_trips, s.acc.fixes,
             _dt(s.acc.last), s.version)
            for start, s in changed
        ]  # fmt: skip
        out.add(ddl.TRUCK_DAILY, ddl.DAILY_COLUMNS, rows)
        return bool(rows)

    def after(self, applied: list[TruckPosition], now: datetime, out: Emitted) -> None:
        wall = now.timestamp()
        for tid in sorted({f.truck_id for f in applied}):
            t = self.state.trucks.get(tid)
            if t is not None:
                self._emit(tid, t, wall, out)

    def tick(self, now: datetime, out: Emitted) -> bool:
        """Every truck on its own clock: release, close its days, clear its idle alarm if
        it has gone silent, and forget it once quiet past the eviction time."""
        wall, changed = now.timestamp(), False
        for tid in sorted(self.state.trucks):
            t = self.state.trucks[tid]
            if t.days.clock.idle_s(wall) >= self.evict_after_s:
                self.evict(tid, wall, out)
                changed = True
                continue
            changed |= self._advance(tid, t, wall, out)
            changed |= self._emit(tid, t, wall, out)
            wm = self.policy.watermark(t.days.clock, wall)
            if wm is not None:
                # The watermark, not the clock: a held fix may still arrive before it.
                alarms = self.alarms.sweep(wm, [f"{TRUCK_IDLE}/{tid}"])
                out.alarms.extend(alarms)
                changed |= bool(alarms)
        return changed

    def evict(self, tid: str, wall: float, out: Emitted) -> None:
        """Write everything the truck holds, then forget it and its pending alarm."""
        t = self.state.trucks[tid]
        for ts, held in t.held.release(None, force=True):
            self._release(tid, t, ts, held, wall, out)
        self._emit(tid, t, wall, out, force=True)
        now = t.days.clock.now(wall)
        key = f"{TRUCK_IDLE}/{tid}"
        if now is not None:
            out.alarms.extend(self.alarms.sweep(now, [key]))
        self.alarms.drop_pending(TRUCK_IDLE, tid)
        del self.state.trucks[tid]
        EVICTED.labels("waste").inc()


def waste_pipeline(
    settings: Settings, book: RuleBook, sites: SiteRegistry, sink: BaseSink, checkpoints: Checkpoints,
    producer: Producer, highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:  # fmt: skip
    def factory(key: StateKey, saved: bytes | None) -> WastePartition:
        return WastePartition(settings, book, sites, saved, wall=clock().timestamp())

    return Pipeline(
        "waste", settings, sink, checkpoints, producer, factory, highwater=highwater, clock=clock
    )
