"""Flood logic: gauge bands, rate of rise, silent stations, citizen reports, and the flood
status of every kecamatan. One processor holds the whole city (flood topics are small and
single-partition), so gauges and reports of a kecamatan always meet in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.catalog import FLOOD_REPORTS, GAUGE_READINGS
from schemas.deadletter import Reason
from schemas.flood import FloodReport, GaugeKind, GaugeReading, StationRegistry
from schemas.spatial import Gazetteer
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.pipeline import Emitted, Message
from streams.validation import Rejection, decode_many, future_problem

LEVELS = ("normal", "waspada", "siaga", "awas")
FLOOD_LEVEL, FLOOD_RISE, STATION_SILENT = "flood_level", "flood_rise", "station_silent"


@dataclass
class StationState:
    last_ts: float = 0.0
    history: list[tuple[float, float]] = field(
        default_factory=list
    )  # (ts, level) in the rise window


@dataclass
class Report:
    ts: float
    kecamatan: str
    depth_cm: float


@dataclass
class FloodState:
    offsets: dict[str, int] = field(default_factory=dict)
    max_ts: float | None = None
    stations: dict[str, StationState] = field(default_factory=dict)
    reports: list[Report] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)  # last emitted status row, as a signature
    alarms: EngineState = field(default_factory=EngineState)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class FloodProcessor:
    def __init__(
        self,
        book: RuleBook,
        registry: StationRegistry,
        gazetteer: Gazetteer,
        max_future_s: float,
        saved: bytes | None = None,
    ) -> None:
        self.book = book
        self.cfg = book.flood
        self.registry = registry.by_id()
        self.gazetteer = gazetteer
        self.max_future_s = max_future_s
        self.state = msgspec.json.decode(saved, type=FloodState) if saved else FloodState()
        self.alarms = AlarmEngine(book, self.state.alarms)
        self.kecamatan = {
            sid: gazetteer.kecamatan.at(s.lon, s.lat) or "outside"
            for sid, s in self.registry.items()
        }

    def offset(self, topic: str) -> int:
        return self.state.offsets.get(topic, -1)

    def dumps(self) -> bytes:
        return msgspec.json.encode(self.state)

    def _observe_clock(self, ts: float) -> None:
        if self.state.max_ts is None or ts > self.state.max_ts:
            self.state.max_ts = ts

    def handle(self, msg: Message, now: datetime, out: Emitted) -> tuple[int, list[Rejection]]:
        self.state.offsets[msg.topic] = msg.offset
        if msg.topic == FLOOD_REPORTS.name:
            reports, rejections = decode_many(msg.value, FloodReport)
            for report in reports:
                problem = self._report(report, now, out)
                if problem:
                    rejections.append(
                        Rejection(problem[0], problem[1], report.model_dump_json().encode())
                    )
            return len(reports) + len(rejections), rejections
        readings, rejections = decode_many(msg.value, GaugeReading)
        seen = len(readings) + len(rejections)
        for reading in readings:
            problem = self._reading(reading, now, out)
            if problem:
                rejections.append(
                    Rejection(problem[0], problem[1], reading.model_dump_json().encode())
                )
        return seen, rejections

    def _reading(self, r: GaugeReading, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        station = self.registry.get(r.station_id)
        if station is None:
            return Reason.UNKNOWN_ENTITY, f"unknown station {r.station_id!r}"
        if station.kind is not r.kind:
            return (
                Reason.SCHEMA,
                f"station {r.station_id} is a {station.kind} gauge, got a {r.kind} reading",
            )
        if not station.min_value <= r.value <= station.max_value:
            return Reason.IMPOSSIBLE_VALUE, (
                f"{r.kind} {r.value} outside {station.min_value}..{station.max_value} for {r.station_id}"
            )
        future = future_problem(r.timestamp, now, self.max_future_s)
        if future:
            return future
        ts = r.timestamp.timestamp()
        kec = self.kecamatan[r.station_id]
        out.add(ddl.GAUGE_READINGS, ddl.GAUGE_COLUMNS,
                [(r.station_id, r.kind.value, r.timestamp, r.value, station.river, kec, r.source, now)])  # fmt: skip
        st = self.state.stations.setdefault(r.station_id, StationState())
        if ts <= st.last_ts:
            return None  # a repeat or an old reading: stored, but it cannot move the state back
        st.last_ts = ts
        self._observe_clock(ts)
        context: Context = {"station": station.name, "river": station.river, "kecamatan": kec,
                            "lat": station.lat, "lon": station.lon}  # fmt: skip
        out.alarms.extend(self.alarms.observe(STATION_SILENT, r.station_id, ts, 0.0, context))
        bands = station.bands()
        if r.kind is not GaugeKind.LEVEL or bands is None:
            return None
        window = self.cfg.rise_window_min * 60
        st.history = [(t, v) for t, v in st.history if t >= ts - window] + [(ts, r.value)]
        rise = r.value - min(v for _, v in st.history)
        out.alarms.extend(
            self.alarms.observe(FLOOD_LEVEL, r.station_id, ts, r.value, context, thresholds=bands)
        )
        out.alarms.extend(
            self.alarms.observe(
                FLOOD_RISE, r.station_id, ts, rise, {**context, "level_cm": r.value}
            )
        )
        return None

    def _report(self, r: FloodReport, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        kec = self.gazetteer.kecamatan.at(r.lon, r.lat)
        if kec is None:
            return Reason.OUTSIDE_SERVICE_AREA, f"lon={r.lon} lat={r.lat} is outside Kota Semarang"
        future = future_problem(r.timestamp, now, self.max_future_s)
        if future:
            return future
        out.add(ddl.FLOOD_REPORTS, ddl.REPORT_COLUMNS,
                [(r.report_id, r.timestamp, r.lat, r.lon, r.depth_cm, kec, r.note, r.source, now)])  # fmt: skip
        ts = r.timestamp.timestamp()
        self.state.reports.append(Report(ts, kec, r.depth_cm))
        self._observe_clock(ts)
        return None

    def tick(self, now: datetime, idle_for_s: float, out: Emitted) -> bool:
        """Silence checks and the status of every kecamatan, on the event clock (the newest
        reading's time, advanced by the time nothing has arrived), so a replay behaves as
        the live run did."""
        if self.state.max_ts is None:
            return False
        clock = self.state.max_ts + idle_for_s
        before = len(out.alarms)
        for sid, st in self.state.stations.items():
            station = self.registry.get(sid)
            if station is None:
                continue
            context: Context = {
                "station": station.name,
                "river": station.river,
                "kecamatan": self.kecamatan[sid],
            }
            out.alarms.extend(
                self.alarms.observe(STATION_SILENT, sid, clock, (clock - st.last_ts) / 60, context)
            )
        changed = self._status(clock, out)
        return changed or len(out.alarms) > before

    def _band(self, depth: float) -> int:
        return sum(1 for b in self.cfg.report_bands_cm if depth >= b)

    def _status(self, clock: float, out: Emitted) -> bool:
        horizon = clock - self.cfg.report_window_h * 3600
        self.state.reports = [r for r in self.state.reports if r.ts >= horizon]
        gauges: dict[str, tuple[int, list[str]]] = {}
        for sid, kec in self.kecamatan.items():
            machine = self.alarms.state.machines.get(f"{FLOOD_LEVEL}/{sid}")
            level = machine.level if machine else 0
            lvl, names = gauges.get(kec, (0, []))
            gauges[kec] = (max(lvl, level), [*names, sid] if level else names)
        reports: dict[str, list[float]] = {}
        for r in self.state.reports:
            reports.setdefault(r.kecamatan, []).append(r.depth_cm)
        rows: list[tuple[Any, ...]] = []
        for kec in sorted(set(gauges) | set(reports) | set(self.state.status)):
            g_level, alarmed = gauges.get(kec, (0, []))
            depths = reports.get(kec, [])
            r_level = self._band(max(depths)) if depths else 0
            level = max(g_level, r_level)
            signature = f"{level}|{g_level}|{r_level}|{len(depths)}|{','.join(alarmed)}"
            if self.state.status.get(kec) == signature:
                continue
            self.state.status[kec] = signature
            rows.append((kec, _dt(clock), LEVELS[level], level, LEVELS[g_level], LEVELS[r_level],
                         len(depths), max(depths, default=0.0), alarmed))  # fmt: skip
        out.add(ddl.FLOOD_STATUS, ddl.STATUS_COLUMNS, rows)
        return bool(rows)


def flood_state_key(msg: Message) -> tuple[str, int]:
    return ("flood", 0)


TOPICS = (GAUGE_READINGS.name, FLOOD_REPORTS.name)
