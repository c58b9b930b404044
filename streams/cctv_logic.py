"""CCTV: camera analytics events become incidents (one per camera and kind while events
keep coming within the gap), with alarms by kind and confidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.cctv import CameraEvent, CameraRegistry, EventKind
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.spatial import Gazetteer
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.checkpoints import Checkpoints
from streams.partition import ItemPartition
from streams.pipeline import Emitted, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.validation import future_problem


@dataclass
class Incident:
    incident_id: str
    started: float
    last: float
    events: int = 0
    max_confidence: float = 0.0


@dataclass
class CctvState:
    offset: int = -1
    max_ts: float | None = None
    open: dict[str, Incident] = field(default_factory=dict)  # "camera/kind" → incident
    alarms: EngineState = field(default_factory=EngineState)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class CctvPartition(ItemPartition[CameraEvent]):
    model = CameraEvent

    def __init__(self, settings: Settings, book: RuleBook, registry: CameraRegistry,
                 gazetteer: Gazetteer, saved: bytes | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.cfg = book.cctv
        self.cameras = registry.by_id()
        self.kecamatan = {
            cid: gazetteer.kecamatan.at(c.lon, c.lat) or "outside"
            for cid, c in self.cameras.items()
        }
        self.state = msgspec.json.decode(saved, type=CctvState) if saved else CctvState()
        self.alarms = AlarmEngine(book, self.state.alarms)

    def order(self, items: list[CameraEvent]) -> list[CameraEvent]:
        return sorted(items, key=lambda e: e.timestamp)

    def _context(self, camera_id: str, kind: str) -> Context:
        cam = self.cameras[camera_id]
        return {
            "camera": cam.name,
            "kind": kind,
            "kecamatan": self.kecamatan[camera_id],
            "lat": cam.lat,
            "lon": cam.lon,
        }

    def _row(self, camera_id: str, kind: str, inc: Incident, state: str) -> tuple[Any, ...]:
        return (inc.incident_id, camera_id, kind, self.kecamatan[camera_id], _dt(inc.started), _dt(inc.last),
                inc.events, inc.max_confidence, state, int(inc.last * 1000) * 2 + (state == "closed"))  # fmt: skip

    def _close(self, key: str, inc: Incident, out: Emitted) -> None:
        camera_id, kind = key.split("/", 1)
        out.add(
            ddl.CCTV_INCIDENTS, ddl.INCIDENT_COLUMNS, [self._row(camera_id, kind, inc, "closed")]
        )
        out.alarms.extend(
            self.alarms.observe(
                f"cctv_{kind}", camera_id, inc.last, 0.0, self._context(camera_id, kind)
            )
        )

    def apply(self, ev: CameraEvent, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        if ev.camera_id not in self.cameras:
            return Reason.UNKNOWN_ENTITY, f"unknown camera {ev.camera_id!r}"
        future = future_problem(ev.timestamp, now, self.settings.max_future_s)
        if future:
            return future
        ts = ev.timestamp.timestamp()
        self.state.max_ts = max(self.state.max_ts or ts, ts)
        kec = self.kecamatan[ev.camera_id]
        incident_id = ""
        if ev.kind is not EventKind.PLATE_READ and ev.confidence >= self.cfg.min_confidence:
            key = f"{ev.camera_id}/{ev.kind.value}"
            inc = self.state.open.get(key)
            if inc is not None and ts - inc.last > self.cfg.incident_gap_min * 60:
                self._close(key, self.state.open.pop(key), out)
                inc = None
            if inc is None:
                inc = self.state.open[key] = Incident(f"{key}/{int(ts * 1000)}", ts, ts)
            inc.last, inc.events = max(inc.last, ts), inc.events + 1
            inc.max_confidence = max(inc.max_confidence, ev.confidence)
            incident_id = inc.incident_id
            out.add(
                ddl.CCTV_INCIDENTS,
                ddl.INCIDENT_COLUMNS,
                [self._row(ev.camera_id, ev.kind.value, inc, "open")],
            )
            context = {**self._context(ev.camera_id, ev.kind.value), "incident_id": inc.incident_id}
            out.alarms.extend(
                self.alarms.observe(
                    f"cctv_{ev.kind.value}", ev.camera_id, ts, inc.max_confidence, context
                )
            )
        out.add(ddl.CCTV_EVENTS, ddl.CAMERA_EVENT_COLUMNS,
                [(ev.camera_id, ev.timestamp, ev.kind.value, ev.confidence, ev.plate, ev.people, kec, incident_id)])  # fmt: skip
        return None

    def tick(self, now: datetime, idle_for_s: float, out: Emitted) -> bool:
        """Close incidents whose camera has been quiet past the gap (on the event clock)."""
        if self.state.max_ts is None:
            return False
        clock = self.state.max_ts + idle_for_s
        stale = [
            k
            for k, inc in self.state.open.items()
            if clock - inc.last > self.cfg.incident_gap_min * 60
        ]
        for key in stale:
            self._close(key, self.state.open.pop(key), out)
        return bool(stale)


def cctv_pipeline(
    settings: Settings, book: RuleBook, registry: CameraRegistry, gazetteer: Gazetteer,
    sink: BaseSink, checkpoints: Checkpoints, producer: Producer,
    highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:  # fmt: skip
    def factory(key: StateKey, saved: bytes | None) -> CctvPartition:
        return CctvPartition(settings, book, registry, gazetteer, saved)

    return Pipeline(
        "cctv", settings, sink, checkpoints, producer, factory, highwater=highwater, clock=clock
    )
