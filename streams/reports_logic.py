"""Citizen reports: the lifecycle of each report, its rows, and SLA-breach alarms.

Each ``reports.events`` partition keeps its open reports (and, for a while, which ones
closed) and applies events in arrival order; a step the lifecycle forbids is dead-lettered,
never applied. ``reports.contacts`` only goes to its own table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.alarms import Reason as AlarmReason
from schemas.deadletter import Reason
from schemas.reports import (
    TERMINAL,
    ReportContact,
    ReportEvent,
    ReportStatus,
    Routing,
    transition_problem,
)
from schemas.settings import Settings
from schemas.spatial import Gazetteer
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.checkpoints import Checkpoints
from streams.partition import ItemPartition
from streams.pipeline import Emitted, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.validation import future_problem

log = logging.getLogger(__name__)

SLA_KIND = "report_sla_breach"
DAY_S = 86400.0


@dataclass
class OpenReport:
    status: str
    category: str
    department: str
    kecamatan: str
    text: str
    lat: float
    lon: float
    photo_urls: list[str]
    channel: str
    received: float
    updated: float
    due: float
    version: int = 0
    last_actor: str | None = None
    last_note: str | None = None


@dataclass
class Closed:
    status: str
    at: float


@dataclass
class ReportsState:
    offset: int = -1
    max_ts: float | None = None
    # Wall time at which max_ts last advanced: the clock keeps running between events and
    # across restarts, yet a replay of old events runs on their own time.
    seen_at: float | None = None
    open: dict[str, OpenReport] = field(default_factory=dict)
    closed: dict[str, Closed] = field(default_factory=dict)
    alarms: EngineState = field(default_factory=EngineState)


@dataclass
class ContactsState:
    offset: int = -1


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class ReportsPartition(ItemPartition[ReportEvent]):
    model = ReportEvent

    def __init__(self, settings: Settings, book: RuleBook, routing: Routing,
                 gazetteer: Gazetteer, saved: bytes | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.cfg = book.reports
        self.routing = routing
        self.departments = set(routing.departments)
        self.gazetteer = gazetteer
        self.state = msgspec.json.decode(saved, type=ReportsState) if saved else ReportsState()
        self.alarms = AlarmEngine(book, self.state.alarms)

    def clock(self, now: datetime) -> float | None:
        """The partition's event clock, advanced by the wall time since its newest event."""
        s = self.state
        if s.max_ts is None or s.seen_at is None:
            return None
        return s.max_ts + max(0.0, now.timestamp() - s.seen_at)

    def _received(self, ev: ReportEvent) -> tuple[Reason, str] | OpenReport:
        assert ev.category is not None and ev.lat is not None and ev.lon is not None
        category = self.routing.get(ev.category)
        if category is None:
            return Reason.UNKNOWN_ENTITY, f"unknown category {ev.category!r}"
        kecamatan = self.gazetteer.kecamatan.at(ev.lon, ev.lat)
        if kecamatan is None:
            return Reason.OUTSIDE_SERVICE_AREA, f"lat={ev.lat} lon={ev.lon} outside Kota Semarang"
        ts = ev.timestamp.timestamp()
        return OpenReport(
            status=ReportStatus.RECEIVED.value, category=category.id,
            department=ev.department or category.department, kecamatan=kecamatan,
            text=ev.text or "", lat=ev.lat, lon=ev.lon,
            photo_urls=[str(u) for u in ev.photo_urls], channel=ev.channel,
            received=ts, updated=ts, due=ts + category.sla_hours * 3600,
        )  # fmt: skip

    def _context(self, report_id: str, r: OpenReport) -> Context:
        return {
            "report_id": report_id,
            "category": r.category,
            "department": r.department,
            "kecamatan": r.kecamatan,
            "status": r.status,
            "due_at": _dt(r.due).isoformat(),
            "lat": r.lat,
            "lon": r.lon,
        }

    def apply(self, ev: ReportEvent, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        future = future_problem(ev.timestamp, now, self.settings.max_future_s)
        if future:
            return future
        rid = ev.report_id
        report = self.state.open.get(rid)
        closed = self.state.closed.get(rid)
        current = ReportStatus(report.status if report else closed.status) if (report or closed) else None  # fmt: skip
        problem = transition_problem(
            current, ev.kind, report.department if report else None, ev.department
        )
        if problem:
            if current is None:
                return Reason.UNKNOWN_ENTITY, f"report {rid!r}: {problem}"
            return Reason.ILLEGAL_TRANSITION, f"report {rid!r}: {problem}"
        if ev.department is not None and ev.department not in self.departments:
            return Reason.UNKNOWN_ENTITY, f"unknown department {ev.department!r}"
        ts = ev.timestamp.timestamp()
        if report is None:
            made = self._received(ev)
            if isinstance(made, tuple):
                return made
            report = self.state.open[rid] = made
        elif ev.kind is ReportStatus.ASSIGNED and ev.department:
            report.department = ev.department
        report.status = ev.kind.value
        report.updated = max(report.updated, ts)
        report.version += 1
        report.last_actor, report.last_note = ev.actor, ev.note
        closed_at = None
        if ev.kind in TERMINAL:
            closed_at = report.updated
            del self.state.open[rid]
            self.state.closed[rid] = Closed(ev.kind.value, closed_at)
            self._clear_alarm(rid, report, ts, out)
        out.add(
            ddl.CITIZEN_REPORTS, ddl.CITIZEN_REPORT_COLUMNS, [self._row(rid, report, closed_at)]
        )
        out.add(ddl.REPORT_EVENTS, ddl.REPORT_EVENT_COLUMNS,
                [(rid, report.version, ev.timestamp, ev.kind.value, report.department, report.category,
                  report.kecamatan, ev.actor, ev.note, ev.source)])  # fmt: skip
        if self.state.max_ts is None or ts > self.state.max_ts:
            self.state.max_ts, self.state.seen_at = ts, now.timestamp()
        return None

    def _row(self, rid: str, r: OpenReport, closed_at: float | None) -> tuple[Any, ...]:
        return (rid, r.version, r.status, r.category, r.department, r.kecamatan, r.text, r.lat,
                r.lon, r.photo_urls, r.channel, _dt(r.received), _dt(r.updated), _dt(r.due),
                _dt(closed_at) if closed_at is not None else None, r.last_actor, r.last_note)  # fmt: skip

    def _clear_alarm(self, rid: str, r: OpenReport, ts: float, out: Emitted) -> None:
        machine = self.alarms.state.machines.get(f"{SLA_KIND}/{rid}")
        if machine is None or not machine.level:
            return
        # The engine ignores samples older than its last one; the clock may be ahead of
        # the closing event's own time.
        at = max(ts, machine.last_ts)
        out.alarms.extend(self.alarms.observe(SLA_KIND, rid, at, 0.0, self._context(rid, r)))

    def tick(self, now: datetime, out: Emitted) -> bool:
        """Raise or escalate SLA breaches of open reports; forget long-closed ones."""
        clock = self.clock(now)
        if clock is None:
            return False
        before = len(out.alarms)
        expired = self._expire_open(clock, out)
        for rid, r in self.state.open.items():
            if clock <= r.due:
                continue
            ratio = (clock - r.received) / max(r.due - r.received, 1e-9)
            machine = self.alarms.state.machines.get(f"{SLA_KIND}/{rid}")
            # The breach began at the due time whenever it is noticed: starting the alarm
            # there keeps its id (kind/entity/start) the same on a replay.
            at = clock if machine is not None and machine.level else r.due
            out.alarms.extend(self.alarms.observe(SLA_KIND, rid, at, ratio, self._context(rid, r)))
        horizon = clock - self.cfg.closed_memory_days * DAY_S
        stale = [rid for rid, c in self.state.closed.items() if c.at < horizon]
        for rid in stale:
            del self.state.closed[rid]
        machines = len(self.alarms.state.machines)
        out.alarms.extend(self.alarms.sweep(clock))
        return (
            bool(stale or expired)
            or len(out.alarms) > before
            or machines != len(self.alarms.state.machines)
        )

    def _expire_open(self, clock: float, out: Emitted) -> list[str]:
        """Forget open reports that saw no event for ``open_memory_days``; their SLA alarm is
        cleared (reason silence) at the moment they expired, so a replay gives the same row."""
        memory = self.cfg.open_memory_days * DAY_S
        expired = [rid for rid, r in self.state.open.items() if r.updated < clock - memory]
        for rid in expired:
            r = self.state.open.pop(rid)
            out.alarms.extend(
                self.alarms.forget(SLA_KIND, rid, r.updated + memory, AlarmReason.SILENCE)
            )
            log.warning(
                "open report forgotten: no event for open_memory_days",
                extra={"report_id": rid, "status": r.status, "days": self.cfg.open_memory_days},
            )
        return expired


class ContactsPartition(ItemPartition[ReportContact]):
    """Contacts go to their own table and nowhere else."""

    model = ReportContact

    def __init__(self, book: RuleBook, saved: bytes | None = None) -> None:
        self.state = msgspec.json.decode(saved, type=ContactsState) if saved else ContactsState()
        self.alarms = AlarmEngine(book)

    def apply(self, c: ReportContact, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        if c.is_empty():
            return Reason.SCHEMA, f"report {c.report_id!r}: contact without name, phone or email"
        out.add(ddl.REPORT_CONTACTS, ddl.REPORT_CONTACT_COLUMNS,
                [(c.report_id, c.timestamp, c.name, c.phone, c.email, c.channel, now)])  # fmt: skip
        return None


def reports_pipeline(
    settings: Settings, book: RuleBook, routing: Routing, gazetteer: Gazetteer,
    sink: BaseSink, checkpoints: Checkpoints, producer: Producer, contacts_topic: str,
    highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:  # fmt: skip
    def factory(key: StateKey, saved: bytes | None) -> ReportsPartition | ContactsPartition:
        if key[0] == contacts_topic:
            return ContactsPartition(book, saved)
        return ReportsPartition(settings, book, routing, gazetteer, saved)

    return Pipeline(
        "reports", settings, sink, checkpoints, producer, factory, highwater=highwater, clock=clock
    )
