"""CCTV: camera analytics events become incidents (one per camera and kind while events
keep coming within the gap), with alarms by kind and confidence.

Each camera has its own event clock (streams/windows.py). Its events are held up to the
allowed lateness and released in event-time order, so how events group into incidents
does not depend on how cameras interleave or on the order within the lateness. An
incident closes once its camera's watermark is past its last event plus the gap: then
every event that could still have extended it has been released. An event behind the
released watermark is stored and, if it falls inside a still-open incident of its kind,
counted in it (a correction); it can no longer start or bridge incidents. Past the
correction horizon it is dead-lettered as late.

An incident row's version is ``events * 2 (+1 once closed)``, which only grows with its
content, above every version the former scheme (milliseconds * 2) wrote.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.alarms import Alarm
from schemas.catalog import CAMERA_EVENTS
from schemas.cctv import CameraEvent, CameraRegistry, EventKind
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.spatial import Gazetteer
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.checkpoints import Checkpoints
from streams.metrics import CORRECTIONS, DUPLICATES, EVICTED, LATE_EVENTS
from streams.partition import ItemPartition
from streams.pipeline import Emitted, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.validation import future_problem
from streams.windows import EntityClock, Reorder

ALARM_KINDS = tuple(f"cctv_{k.value}" for k in EventKind)
VERSION_BASE = 1 << 48  # above int(ms) * 2 of any event before the year 4000
log = logging.getLogger(__name__)


@dataclass
class Incident:
    incident_id: str
    started: float
    last: float
    events: int = 0
    max_confidence: float = 0.0


class Seen(msgspec.Struct, array_like=True):
    """One analytics event, held until its camera's watermark passes it."""

    kind: str
    confidence: float
    plate: str | None = None
    people: int | None = None


class CameraState(msgspec.Struct, array_like=True):
    clock: EntityClock = msgspec.field(default_factory=EntityClock)
    # Events of one time, one per kind: the table keeps one row per (camera, kind, ts).
    held: Reorder[list[Seen]] = msgspec.field(default_factory=Reorder)
    open: dict[str, Incident] = msgspec.field(default_factory=dict)  # kind → incident
    # (ts, kind) released within the correction horizon: a redelivery is recognised.
    recent: list[tuple[float, str]] = msgspec.field(default_factory=list)


@dataclass
class CctvState:
    offset: int = -1
    cameras: dict[str, CameraState] = field(default_factory=dict)
    alarms: EngineState = field(default_factory=EngineState)
    # The former format: one partition clock and "camera/kind" → incident; moved at load.
    max_ts: float | None = None
    open: dict[str, Incident] = field(default_factory=dict)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class CctvPartition(ItemPartition[CameraEvent]):
    model = CameraEvent

    def __init__(self, settings: Settings, book: RuleBook, registry: CameraRegistry,
                 gazetteer: Gazetteer, saved: bytes | None = None,
                 wall: float | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.cfg = book.cctv
        self.gap_s = self.cfg.incident_gap_min * 60
        self.lateness_s = settings.window_allowed_lateness_s
        self.horizon_s = settings.correction_horizon_s
        self.evict_after_s = settings.entity_evict_after_s
        self.cameras = registry.by_id()
        self.kecamatan = {
            cid: gazetteer.kecamatan.at(c.lon, c.lat) or "outside"
            for cid, c in self.cameras.items()
        }
        self.state = msgspec.json.decode(saved, type=CctvState) if saved else CctvState()
        self.alarms = AlarmEngine(book, self.state.alarms)
        self._dropped: list[Alarm] = []  # cleared alarms of removed cameras, for the next tick
        self._on_load(time.time() if wall is None else wall)

    def _on_load(self, wall: float) -> None:
        """Fit restored state to today's registry: the state of removed cameras is dropped
        (one log line each), and the former format's incidents move to their camera."""
        for key, inc in self.state.open.items():
            cid, kind = key.split("/", 1)
            cam = self.state.cameras.setdefault(cid, CameraState())
            cam.open[kind] = inc
            cam.clock.observe(inc.last, wall)
            cam.held.released_until = max(cam.held.released_until or inc.last, inc.last)
        self.state.open, self.state.max_ts = {}, None
        gone = set(self.state.cameras) | self.alarms.entities(ALARM_KINDS)
        for cid in sorted(gone - set(self.cameras)):
            log.warning("camera no longer in the registry: its state is dropped",
                        extra={"camera": cid})  # fmt: skip
            cam = self.state.cameras.pop(cid, None)
            at = cam.clock.max_ts if cam is not None else None
            self._dropped.extend(self.alarms.forget_entity(ALARM_KINDS, cid, at))

    def order(self, items: list[CameraEvent]) -> list[CameraEvent]:
        return sorted(items, key=lambda e: e.timestamp)

    def _context(self, camera_id: str, kind: str) -> Context:
        cam = self.cameras[camera_id]
        return {"camera": cam.name, "kind": kind, "kecamatan": self.kecamatan[camera_id],
                "lat": cam.lat, "lon": cam.lon}  # fmt: skip

    def _row(self, camera_id: str, kind: str, inc: Incident, closed: bool) -> tuple[Any, ...]:
        return (inc.incident_id, camera_id, kind, self.kecamatan[camera_id], _dt(inc.started),
                _dt(inc.last), inc.events, inc.max_confidence, "closed" if closed else "open",
                VERSION_BASE + inc.events * 2 + closed)  # fmt: skip

    def _event_row(self, cid: str, ts: float, ev: Seen, incident_id: str) -> tuple[Any, ...]:
        return (cid, _dt(ts), ev.kind, ev.confidence, ev.plate, ev.people, self.kecamatan[cid],
                incident_id)  # fmt: skip

    def _close(self, cid: str, kind: str, inc: Incident, out: Emitted) -> None:
        out.add(ddl.CCTV_INCIDENTS, ddl.INCIDENT_COLUMNS, [self._row(cid, kind, inc, True)])
        out.alarms.extend(
            self.alarms.observe(f"cctv_{kind}", cid, inc.last, 0.0, self._context(cid, kind))
        )

    def _counts(self, ev: Seen) -> bool:
        return ev.kind != EventKind.PLATE_READ.value and ev.confidence >= self.cfg.min_confidence

    def apply(self, ev: CameraEvent, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        if ev.camera_id not in self.cameras:
            return Reason.UNKNOWN_ENTITY, f"unknown camera {ev.camera_id!r}"
        future = future_problem(ev.timestamp, now, self.settings.max_future_s)
        if future:
            return future
        cid, ts, wall = ev.camera_id, ev.timestamp.timestamp(), now.timestamp()
        cam = self.state.cameras.get(cid)
        if cam is None:
            cam = self.state.cameras[cid] = CameraState()
        seen = Seen(ev.kind.value, ev.confidence, ev.plate, ev.people)
        if cam.held.is_late(ts):
            return self._late(cid, cam, ts, seen, out)
        cam.clock.observe(ts, wall)
        if not cam.held.add(ts, [seen]):
            i = bisect.bisect_left(cam.held.pending, ts, key=lambda p: p[0])
            same_time = cam.held.pending[i][1]
            if any(s.kind == seen.kind for s in same_time):
                DUPLICATES.labels(CAMERA_EVENTS.name).inc()
            else:
                same_time.append(seen)
        self._advance(cid, cam, wall, out)
        return None

    def _late(self, cid: str, cam: CameraState, ts: float, ev: Seen, out: Emitted) -> tuple[Reason, str] | None:  # fmt: skip
        """Behind the released watermark: stored, and counted in the open incident it falls
        in; past the correction horizon, late."""
        assert cam.held.released_until is not None  # is_late held
        if ts < cam.held.released_until - self.horizon_s:
            LATE_EVENTS.labels(CAMERA_EVENTS.name).inc()
            return Reason.LATE, f"event at {_dt(ts).isoformat()} is past the correction horizon"
        i = bisect.bisect_left(cam.recent, (ts, ev.kind))
        if i < len(cam.recent) and cam.recent[i] == (ts, ev.kind):
            DUPLICATES.labels(CAMERA_EVENTS.name).inc()
            return None
        cam.recent.insert(i, (ts, ev.kind))
        inc = cam.open.get(ev.kind)
        incident_id = ""
        if self._counts(ev) and inc is not None and inc.started <= ts <= inc.last + self.gap_s:
            inc.last, inc.events = max(inc.last, ts), inc.events + 1
            inc.max_confidence = max(inc.max_confidence, ev.confidence)
            incident_id = inc.incident_id
            out.add(ddl.CCTV_INCIDENTS, ddl.INCIDENT_COLUMNS, [self._row(cid, ev.kind, inc, False)])
            CORRECTIONS.labels(CAMERA_EVENTS.name).inc()
        out.add(
            ddl.CCTV_EVENTS, ddl.CAMERA_EVENT_COLUMNS, [self._event_row(cid, ts, ev, incident_id)]
        )
        return None

    def _advance(self, cid: str, cam: CameraState, wall: float, out: Emitted, force: bool = False) -> bool:  # fmt: skip
        """Release held events in event-time order, then close the incidents the watermark
        has passed by more than the gap (all of them when ``force``)."""
        now = cam.clock.now(wall)
        wm = None if now is None else now - self.lateness_s
        released = cam.held.release(wm, force)
        for ts, events in released:
            for ev in sorted(events, key=lambda s: s.kind):
                self._release(cid, cam, ts, ev, out)
        closing = [k for k, inc in cam.open.items() if force or (wm is not None and wm - inc.last > self.gap_s)]  # fmt: skip
        for kind in sorted(closing):
            self._close(cid, kind, cam.open.pop(kind), out)
        if cam.held.released_until is not None:
            n = bisect.bisect_left(cam.recent, (cam.held.released_until - self.horizon_s, ""))
            del cam.recent[:n]
        return bool(released or closing)

    def _release(self, cid: str, cam: CameraState, ts: float, ev: Seen, out: Emitted) -> None:
        bisect.insort(cam.recent, (ts, ev.kind))
        incident_id = ""
        if self._counts(ev):
            inc = cam.open.get(ev.kind)
            if inc is not None and ts - inc.last > self.gap_s:
                self._close(cid, ev.kind, cam.open.pop(ev.kind), out)
                inc = None
            if inc is None:
                inc = cam.open[ev.kind] = Incident(f"{cid}/{ev.kind}/{int(ts * 1000)}", ts, ts)
            inc.last, inc.events = max(inc.last, ts), inc.events + 1
            inc.max_confidence = max(inc.max_confidence, ev.confidence)
            incident_id = inc.incident_id
            out.add(ddl.CCTV_INCIDENTS, ddl.INCIDENT_COLUMNS, [self._row(cid, ev.kind, inc, False)])
            context = {**self._context(cid, ev.kind), "incident_id": inc.incident_id}
            out.alarms.extend(
                self.alarms.observe(f"cctv_{ev.kind}", cid, ts, inc.max_confidence, context)
            )
        out.add(
            ddl.CCTV_EVENTS, ddl.CAMERA_EVENT_COLUMNS, [self._event_row(cid, ts, ev, incident_id)]
        )

    def tick(self, now: datetime, out: Emitted) -> bool:
        """Every camera on its own clock: release, close incidents it has been quiet past,
        and forget cameras quiet past the eviction time."""
        wall, changed = now.timestamp(), bool(self._dropped)
        out.alarms.extend(self._dropped)
        self._dropped = []
        for cid in sorted(self.state.cameras):
            cam = self.state.cameras[cid]
            if cam.clock.idle_s(wall) >= self.evict_after_s:
                self._advance(cid, cam, wall, out, force=True)
                for kind in ALARM_KINDS:
                    self.alarms.drop_pending(kind, cid)
                del self.state.cameras[cid]
                EVICTED.labels("cctv").inc()
                changed = True
                continue
            changed |= self._advance(cid, cam, wall, out)
        return changed


def cctv_pipeline(
    settings: Settings, book: RuleBook, registry: CameraRegistry, gazetteer: Gazetteer,
    sink: BaseSink, checkpoints: Checkpoints, producer: Producer,
    highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:  # fmt: skip
    def factory(key: StateKey, saved: bytes | None) -> CctvPartition:
        return CctvPartition(settings, book, registry, gazetteer, saved, clock().timestamp())

    return Pipeline(
        "cctv", settings, sink, checkpoints, producer, factory, highwater=highwater, clock=clock
    )
