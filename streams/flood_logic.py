"""Flood logic: gauge bands, rate of rise, silent stations, citizen reports, and the flood
status of every kecamatan. One processor holds the whole city (flood topics are small and
single-partition), so gauges and reports of a kecamatan always meet in one place.

Event time belongs to the station (streams/windows.py). Each station has its own clock;
its readings are held up to the allowed lateness and applied in event-time order, so its
bands, rate of rise and alarms do not depend on how the feed ordered or batched them, nor
on other stations: a replay of old readings next to live gauges is judged on its own clock.
Silence is measured, not inferred from other stations: the wall time since the station's
newest reading, against the station's own cadence. The status of a kecamatan is built
from the station results and the citizens' reports there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.alarms import Alarm
from schemas.alarms import Reason as AlarmReason
from schemas.catalog import FLOOD_REPORTS, GAUGE_READINGS
from schemas.deadletter import Reason
from schemas.flood import FloodReport, GaugeKind, GaugeReading, Station, StationRegistry
from schemas.spatial import Gazetteer
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.metrics import DUPLICATES, LATE_EVENTS
from streams.pipeline import Emitted, Message
from streams.validation import Rejection, decode_many, future_problem
from streams.windows import EntityClock, Reorder

log = logging.getLogger(__name__)

LEVELS = ("normal", "waspada", "siaga", "awas")
FLOOD_LEVEL, FLOOD_RISE, STATION_SILENT = "flood_level", "flood_rise", "station_silent"
KINDS = (FLOOD_LEVEL, FLOOD_RISE, STATION_SILENT)


@dataclass
class StationState:
    clock: EntityClock = field(default_factory=EntityClock)  # observed at arrival
    held: Reorder[float] = field(default_factory=Reorder)  # values waiting for the watermark
    last_ts: float | None = None  # the newest reading applied
    # Applied (ts, level) from the rise reference (see FloodProcessor._rise) on.
    history: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Report:
    ts: float
    depth_cm: float | None = None  # None: the citizen gave no depth (most real reports)


@dataclass
class KecamatanState:
    # Newest reading or report of the kecamatan, advanced by idle time: reports expire on it.
    clock: EntityClock = field(default_factory=EntityClock)
    # The status row's updated_at (its ReplacingMergeTree version): the newest time of any
    # fact behind it (a reading's, a report's, a report's expiry). A function of the facts
    # alone, never of arrival order or batching, and it never decreases.
    as_of: float = 0.0
    expired_before: float | None = None  # reports at or before this have expired
    reports: dict[str, Report] = field(default_factory=dict)  # by report_id: repeats count once
    emitted: str = ""  # signature of the last status row written


@dataclass
class FloodState:
    offsets: dict[str, int] = field(default_factory=dict)
    stations: dict[str, StationState] = field(default_factory=dict)
    kecamatan: dict[str, KecamatanState] = field(default_factory=dict)
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
        lateness_s: float = 10.0,
        keep_outside: bool = False,
    ) -> None:
        self.book = book
        # Reports outside Kota Semarang are dead-lettered, unless the service-area check is
        # off (SITROOM_SERVICE_AREA=none, as replays of other cities' archives need): then
        # they are stored under kecamatan "outside" and count in no kecamatan's status.
        self.keep_outside = keep_outside
        self.cfg = book.flood
        self.registry = registry.by_id()
        self.gazetteer = gazetteer
        self.max_future_s = max_future_s
        self.lateness_s = lateness_s
        self.state = msgspec.json.decode(saved, type=FloodState) if saved else FloodState()
        self.alarms = AlarmEngine(book, self.state.alarms)
        self.kecamatan = {
            sid: gazetteer.kecamatan.at(s.lon, s.lat) or "outside"
            for sid, s in self.registry.items()
        }
        self.late = 0  # readings too old to move their station's state (also a metric)
        self.duplicates = 0
        self._dropped = self._drop_removed_stations()

    def _drop_removed_stations(self) -> list[Alarm]:
        """Drift: a station taken out of the registry loses its state and alarm machines when
        the state loads (nothing could judge or clear them); its open alarms are cleared,
        and those transitions are written at the next tick."""
        gone = set(self.state.stations) | self.alarms.entities(KINDS)
        cleared: list[Alarm] = []
        for sid in sorted(gone - set(self.registry)):
            st = self.state.stations.pop(sid, None)
            log.warning(
                "flood station state dropped: the station is no longer in the registry",
                extra={"station": sid},
            )
            at = st.clock.max_ts if st is not None else None
            cleared.extend(self.alarms.forget_entity(KINDS, sid, at, AlarmReason.SILENCE))
        return cleared

    def offset(self, topic: str) -> int:
        return self.state.offsets.get(topic, -1)

    def dumps(self) -> bytes:
        return msgspec.json.encode(self.state)

    def skip(self, topic: str, offset: int) -> None:
        self.state.offsets[topic] = offset

    def state_root(self) -> object:
        return self.state

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
            problem = self._reading(reading, now, out, msg.topic)
            if problem:
                rejections.append(
                    Rejection(problem[0], problem[1], reading.model_dump_json().encode())
                )
        return seen, rejections

    def _kecamatan(self, kec: str, ts: float, wall: float) -> KecamatanState:
        ks = self.state.kecamatan.get(kec)
        if ks is None:
            ks = self.state.kecamatan[kec] = KecamatanState()
        ks.clock.observe(ts, wall)
        ks.as_of = max(ks.as_of, ts)
        return ks

    def _reading(
        self, r: GaugeReading, now: datetime, out: Emitted, topic: str = GAUGE_READINGS.name
    ) -> tuple[Reason, str] | None:
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
        ts, wall = r.timestamp.timestamp(), now.timestamp()
        sid, kec = r.station_id, self.kecamatan[r.station_id]
        # Every valid reading is stored as it arrives, whatever its time.
        out.add(ddl.GAUGE_READINGS, ddl.GAUGE_COLUMNS,
                [(sid, r.kind.value, r.timestamp, r.value, station.river, kec, r.source, now)])  # fmt: skip
        self._kecamatan(kec, ts, wall)
        st = self.state.stations.get(sid)
        if st is None:
            st = self.state.stations[sid] = StationState()
        if st.held.is_late(ts):
            if ts == st.last_ts or any(t == ts for t, _ in st.history):
                self._duplicate(topic)
                return None
            # Older than what the station has already applied, past the lateness: stored
            # above, counted here, but it cannot move the station's state (its bands, rise
            # and alarms were judged without it and are not rewound).
            self.late += 1
            LATE_EVENTS.labels(topic).inc()
            return None
        st.clock.observe(ts, wall)
        if not st.held.add(ts, r.value):
            self._duplicate(topic)
        self._advance(sid, st, wall, out)
        return None

    def _duplicate(self, topic: str) -> None:
        self.duplicates += 1
        DUPLICATES.labels(topic).inc()

    def _advance(self, sid: str, st: StationState, wall: float, out: Emitted) -> int:
        """Apply the held readings the station's watermark has passed, oldest first."""
        now = st.clock.now(wall)
        released = st.held.release(None if now is None else now - self.lateness_s)
        for ts, value in released:
            self._apply(sid, st, ts, value, out)
        return len(released)

    def _apply(self, sid: str, st: StationState, ts: float, value: float, out: Emitted) -> None:
        if st.last_ts is not None and ts <= st.last_ts:
            return  # already applied (a repeat released again)
        st.last_ts = ts
        station = self.registry[sid]
        bands = station.bands()
        if station.kind is not GaugeKind.LEVEL or bands is None:
            return
        context: Context = {"station": station.name, "river": station.river,
                            "kecamatan": self.kecamatan[sid], "lat": station.lat,
                            "lon": station.lon}  # fmt: skip
        # Each reading stands for its station's cadence: an hourly gauge confirms a level
        # (or its end) with one reading, not an hour late.
        out.alarms.extend(self.alarms.observe(FLOOD_LEVEL, sid, ts, value, context,
                                              thresholds=bands, stands_for_s=station.cadence_s))  # fmt: skip
        rise = self._rise(st, ts, value)
        if rise is None:
            return
        rate, interval_s = rise
        rise_context: Context = {**context, "unit": "cm/h", "level_cm": value,
                                 "interval_min": round(interval_s / 60, 1)}  # fmt: skip
        out.alarms.extend(self.alarms.observe(FLOOD_RISE, sid, ts, rate, rise_context))

    def _rise(self, st: StationState, ts: float, value: float) -> tuple[float, float] | None:
        """Rate of rise in cm per hour, over the actual interval between this reading and a
        reference: the newest earlier reading at least the rise window before it.

        Why this reference: a hydrologist reads a rate of rise as the level gained between
        two readings divided by the time between them. For a gauge that reports every few
        seconds the two neighbouring readings are too close (1 cm of sensor noise in 10 s
        reads as 360 cm/h), so the interval is stretched to at least the rise window, a
        quarter of an hour; for a gauge that reports less often than that (hourly), it is
        simply the previous reading, over the hours actually between them. ``None`` until
        the station has a reading that old."""
        window = self.cfg.rise_window_min * 60
        st.history.append((ts, value))
        ref = None
        for i, (t, _) in enumerate(st.history):
            if t > ts - window:
                break
            ref = i
        if ref is None:
            return None
        st.history = st.history[ref:]  # the reference and everything newer: enough for next time
        t0, v0 = st.history[0]
        return (value - v0) / (ts - t0) * 3600, ts - t0

    def _report(self, r: FloodReport, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        kec = self.gazetteer.kecamatan.at(r.lon, r.lat)
        if kec is None and not self.keep_outside:
            return Reason.OUTSIDE_SERVICE_AREA, f"lon={r.lon} lat={r.lat} is outside Kota Semarang"
        future = future_problem(r.timestamp, now, self.max_future_s)
        if future:
            return future
        out.add(ddl.FLOOD_REPORTS, ddl.REPORT_COLUMNS,
                [(r.report_id, r.timestamp, r.lat, r.lon, r.depth_cm, kec or "outside", r.note,
                  r.source, now, r.photo_url)])  # fmt: skip
        if kec is None:
            return None  # kept for the record; it is no kecamatan's evidence
        ts = r.timestamp.timestamp()
        ks = self._kecamatan(kec, ts, now.timestamp())
        if ks.expired_before is not None and ts <= ks.expired_before:
            # Already past the report window: stored, never counted; its expiry is still a
            # fact of the kecamatan's status, as if it had come in time and expired.
            ks.as_of = max(ks.as_of, ts + self.cfg.report_window_h * 3600)
        elif r.report_id not in ks.reports:
            ks.reports[r.report_id] = Report(ts, r.depth_cm)
        return None

    def tick(self, now: datetime, out: Emitted) -> bool:
        """Every station on its own clock: apply the readings its watermark has passed,
        judge its silence, forget idle alarm machines; then the kecamatan status."""
        wall = now.timestamp()
        before = len(out.alarms)
        out.alarms.extend(self._dropped)
        self._dropped = []
        released = 0
        for sid in sorted(self.state.stations):
            st = self.state.stations[sid]
            released += self._advance(sid, st, wall, out)
            station_now = st.clock.now(wall)
            if station_now is None:
                continue
            self._silence(sid, self.registry[sid], st, wall, station_now, out)
            out.alarms.extend(self.alarms.sweep(station_now, [f"{k}/{sid}" for k in KINDS]))
        changed = self._status(wall, out)
        return changed or released > 0 or len(out.alarms) > before

    def _silence(
        self, sid: str, station: Station, st: StationState, wall: float, at: float, out: Emitted
    ) -> None:
        """Minutes since the station's newest reading arrived (wall time), against limits that
        are multiples of its cadence, observed on its own event clock."""
        rule = self.book.rule(STATION_SILENT)
        per_reading = station.cadence_s / 60
        thresholds = [(lv.raise_at * per_reading, lv.clear_at * per_reading) for lv in rule.levels]
        silent_min = st.clock.idle_s(wall) / 60
        key = f"{STATION_SILENT}/{sid}"
        m = self.alarms.state.machines.get(key)
        if m is None and silent_min <= thresholds[0][0]:
            return  # nothing to raise or clear: no machine kept for a station that reports
        if m is not None:
            at = max(at, m.last_ts)  # the clock steps back when a reading arrives after a gap
        context: Context = {"station": station.name, "river": station.river,
                            "kecamatan": self.kecamatan[sid], "cadence_s": station.cadence_s}  # fmt: skip
        out.alarms.extend(
            self.alarms.observe(STATION_SILENT, sid, at, silent_min, context, thresholds)
        )

    def _band(self, depth: float) -> int:
        return sum(1 for b in self.cfg.report_bands_cm if depth >= b)

    def _reports_level(self, reports: list[Report], gauge_level: int = 0) -> int:
        """The kecamatan's level from its citizens' reports in the window.

        A report with a depth stands for the band of that depth (report_bands_cm), below the
        first band for no flood. A report without depth (most real ones: people say
        "banjir" and send a photo, not a measurement) is evidence that there is water,
        not of how much: it stands for the lowest band, Waspada.

        Reports alone are not trusted beyond Waspada: a higher band needs
        ``corroborating_reports`` reports at or above it, or a gauge of the kecamatan that
        is itself at Waspada or above (then the deepest report counts)."""
        bands = sorted((1 if r.depth_cm is None else self._band(r.depth_cm) for r in reports),
                       reverse=True)  # fmt: skip
        if not bands or bands[0] <= 1 or gauge_level >= 1:
            return bands[0] if bands else 0
        n = self.cfg.corroborating_reports
        agreed = bands[n - 1] if len(bands) >= n else 0
        return max(agreed, 1)

    def _status(self, wall: float, out: Emitted) -> bool:
        """A row per kecamatan whose status or as-of time changed since its last row. The
        last row of each kecamatan is then a function of the facts alone (what the stations
        concluded, which reports are in), however they arrived."""
        window = self.cfg.report_window_h * 3600
        gauges: dict[str, tuple[int, list[str]]] = {}
        for sid, kec in self.kecamatan.items():
            machine = self.alarms.state.machines.get(f"{FLOOD_LEVEL}/{sid}")
            level = machine.level if machine else 0
            lvl, names = gauges.get(kec, (0, []))
            gauges[kec] = (max(lvl, level), [*names, sid] if level else names)
        rows: list[tuple[Any, ...]] = []
        for kec in sorted(self.state.kecamatan):
            ks = self.state.kecamatan[kec]
            kec_now = ks.clock.now(wall)
            if kec_now is not None:
                horizon = kec_now - window
                if ks.expired_before is None or horizon > ks.expired_before:
                    ks.expired_before = horizon
            if ks.expired_before is not None:
                for rid in [k for k, r in ks.reports.items() if r.ts <= ks.expired_before]:
                    ks.as_of = max(ks.as_of, ks.reports.pop(rid).ts + window)
            g_level, alarmed = gauges.get(kec, (0, []))
            reports = list(ks.reports.values())
            deepest = max((r.depth_cm for r in reports if r.depth_cm is not None), default=0.0)
            r_level = self._reports_level(reports, g_level)
            level = max(g_level, r_level)
            signature = f"{ks.as_of}|{level}|{g_level}|{r_level}|{len(reports)}|{deepest}|{','.join(alarmed)}"
            if ks.emitted == signature:
                continue
            ks.emitted = signature
            rows.append((kec, _dt(ks.as_of), LEVELS[level], level, LEVELS[g_level],
                         LEVELS[r_level], len(reports), deepest, alarmed))  # fmt: skip
        out.add(ddl.FLOOD_STATUS, ddl.STATUS_COLUMNS, rows)
        return bool(rows)


def flood_state_key(topic: str, partition: int) -> tuple[str, int]:
    # Gauges and reports of the whole city meet in one state, whichever topic loads it.
    return ("flood", 0)


TOPICS = (GAUGE_READINGS.name, FLOOD_REPORTS.name)
