"""Citizen reports: the lifecycle of each report, its rows, and SLA-breach alarms.

Each ``reports.events`` partition keeps its open reports (and, for a while, which ones
closed). A report's life is folded in its own event time (:mod:`streams.report_lifecycle`):
rows are written as steps arrive; what needs the whole past (a step that does not fit, an
SLA rung, the close) is judged once the report's clock, less the lateness, has passed it, so
every row and alarm follows from the steps and not from their order of arrival.
``reports.contacts`` only goes to its own table.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.alarms import Reason as AlarmReason
from schemas.deadletter import Reason
from schemas.reports import (
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
from streams.pipeline import Emitted, Message, Pipeline, Producer, StateKey
from streams.report_lifecycle import (
    Applied,
    Body,
    Closed,
    Folded,
    Report,
    Step,
    Unfit,
    from_saved_v1,
)
from streams.sink import BaseSink
from streams.validation import Rejection, future_problem
from streams.windows import settled_until

log = logging.getLogger(__name__)

SLA_KIND = "report_sla_breach"
DAY_S = 86400.0


@dataclass
class ReportsState:
    offset: int = -1
    topic: str = ""
    partition: int = 0
    # Reports whose life is not settled: open ones, and closed ones within the lateness.
    open: dict[str, Report] = field(default_factory=dict)
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
        self.lateness = settings.window_allowed_lateness_s
        self.routing = routing
        self.departments = set(routing.departments)
        self.gazetteer = gazetteer
        self.state = self._load(saved) if saved else ReportsState()
        self.alarms = AlarmEngine(book, self.state.alarms)
        self.ladder = [lv.raise_at for lv in book.rule(SLA_KIND).levels]
        self._offset = -1

    @staticmethod
    def _load(saved: bytes) -> ReportsState:
        raw = msgspec.json.decode(saved)
        old = {rid: r for rid, r in raw.get("open", {}).items() if "category" in r}
        if not old:
            return msgspec.json.decode(saved, type=ReportsState)
        # Saved before reports were folded in event time: rebuild each open report.
        raw["open"] = {rid: r for rid, r in raw["open"].items() if rid not in old}
        state = msgspec.convert(raw, type=ReportsState)
        for rid, r in old.items():
            machine = state.alarms.machines.get(f"{SLA_KIND}/{rid}")
            state.open[rid] = from_saved_v1(r, machine.level if machine else 0)
        log.info("reports state upgraded", extra={"reports": len(old)})
        return state

    def handle(self, msg: Message, now: datetime, out: Emitted) -> tuple[int, list[Rejection]]:
        self.state.topic, self.state.partition, self._offset = msg.topic, msg.partition, msg.offset
        return super().handle(msg, now, out)

    def _body(self, ev: ReportEvent) -> tuple[Reason, str] | Body:
        assert ev.category is not None and ev.lat is not None and ev.lon is not None
        category = self.routing.get(ev.category)
        if category is None:
            return Reason.UNKNOWN_ENTITY, f"unknown category {ev.category!r}"
        kecamatan = self.gazetteer.kecamatan.at(ev.lon, ev.lat)
        if kecamatan is None:
            return Reason.OUTSIDE_SERVICE_AREA, f"lat={ev.lat} lon={ev.lon} outside Kota Semarang"
        return Body(
            category=category.id, department=ev.department or category.department,
            kecamatan=kecamatan, text=ev.text or "", lat=ev.lat, lon=ev.lon,
            photo_urls=[str(u) for u in ev.photo_urls], channel=ev.channel,
            due=ev.timestamp.timestamp() + category.sla_hours * 3600,
        )  # fmt: skip

    def apply(self, ev: ReportEvent, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        future = future_problem(ev.timestamp, now, self.settings.max_future_s)
        if future:
            return future
        rid, ts = ev.report_id, ev.timestamp.timestamp()
        closed = self.state.closed.get(rid)
        if closed is not None:
            if ev.kind is closed.status and ts == closed.at:
                return None  # the closing step, redelivered
            if ts < closed.at:
                return Reason.LATE, (f"report {rid!r} closed at {_dt(closed.at).isoformat()}; "
                                     "this earlier step came past the lateness")  # fmt: skip
            problem = transition_problem(closed.status, ev.kind)
            return Reason.ILLEGAL_TRANSITION, f"report {rid!r}: {problem}"
        if ev.department is not None and ev.department not in self.departments:
            return Reason.UNKNOWN_ENTITY, f"unknown department {ev.department!r}"
        body = None
        if ev.kind is ReportStatus.RECEIVED:
            made = self._body(ev)
            if isinstance(made, tuple):
                return made
            body = made
        step = Step(kind=ev.kind, ts=ts, offset=self._offset, source=ev.source, actor=ev.actor,
                    note=ev.note, department=ev.department, body=body,
                    mover=ev.actor_department)  # fmt: skip
        report = self.state.open.get(rid) or Report()
        if not report.add(step, now.timestamp()):
            return None
        self.state.open[rid] = report
        folded = self._write(rid, report, out)
        if any(u.step is step for u in folded.unfit) and ts < self._settled(report, now):
            # Nothing still on its way can come before it: refuse it now.
            report.steps.remove(step)
            if not report.steps:
                del self.state.open[rid]
            return self._reason(rid, next(u for u in folded.unfit if u.step is step))
        return None

    def _settled(self, report: Report, now: datetime) -> float:
        return settled_until(report.max_ts, report.seen_at, report.arrived_at,
                             now.timestamp(), self.lateness)  # fmt: skip

    @staticmethod
    def _reason(rid: str, u: Unfit) -> tuple[Reason, str]:
        if u.forbidden:
            return Reason.FORBIDDEN, f"report {rid!r}: {u.problem}"
        return (Reason.ILLEGAL_TRANSITION if u.received else Reason.UNKNOWN_ENTITY,
                f"report {rid!r}: {u.problem}")  # fmt: skip

    def _write(self, rid: str, report: Report, out: Emitted) -> Folded:
        """Fold the report and write what changed: its row (a new version) and the
        report_events rows whose place in its life moved."""
        folded = report.fold()
        body = folded.body
        changed = False
        for seq, a in enumerate(folded.applied, report.seq_base + 1):
            s = a.step
            if (s.seq, s.written_department) == (seq, a.department):
                continue
            s.seq, s.written_department, changed = seq, a.department, True
            assert body is not None
            out.add(ddl.REPORT_EVENTS, ddl.REPORT_EVENT_COLUMNS,
                    [(rid, seq, _dt(s.ts), s.kind.value, a.department, body.category,
                      body.kecamatan, s.actor, s.note, s.source)])  # fmt: skip
        for u in folded.unfit:
            if u.step.seq:
                u.step.seq, u.step.written_department, changed = 0, None, True
        if changed and body is not None:
            n = report.seq_base + len(folded.applied)
            report.version = n if n > report.version else report.version + 1
            out.add(ddl.CITIZEN_REPORTS, ddl.CITIZEN_REPORT_COLUMNS,
                    [self._row(rid, report.version, folded, body)])  # fmt: skip
        return folded

    def _row(self, rid: str, version: int, f: Folded, b: Body) -> tuple[Any, ...]:
        last, first = f.applied[-1], f.applied[0].step
        closed_at = f.closed_at
        return (rid, version, last.status.value, b.category, last.department, b.kecamatan,
                b.text, b.lat, b.lon, b.photo_urls, b.channel, _dt(first.ts), _dt(last.step.ts),
                _dt(b.due), _dt(closed_at) if closed_at is not None else None, last.step.actor,
                last.step.note)  # fmt: skip

    def _context(self, rid: str, b: Body, state: Applied) -> Context:
        return {
            "report_id": rid,
            "category": b.category,
            "department": state.department,
            "kecamatan": b.kecamatan,
            "status": state.status.value,
            "due_at": _dt(b.due).isoformat(),
            "lat": b.lat,
            "lon": b.lon,
        }

    def tick(self, now: datetime, out: Emitted) -> bool:
        """Judge each report on its own settled clock: held steps that still do not fit,
        SLA breaches, closing; forget long-closed and long-quiet reports."""
        changed = False
        for rid in list(self.state.open):
            changed |= self._judge(rid, self.state.open[rid], now, out)
        now_ts = now.timestamp()
        memory = self.cfg.closed_memory_days * DAY_S
        stale = [rid for rid, c in self.state.closed.items() if c.clock(now_ts) - memory > c.at]
        for rid in stale:
            del self.state.closed[rid]
        return changed or bool(stale)

    def _judge(self, rid: str, report: Report, now: datetime, out: Emitted) -> bool:
        settled = self._settled(report, now)
        folded = report.fold()
        before = (len(report.steps), report.sla_points, len(out.alarms))
        for u in folded.unfit:
            if u.step.ts < settled:
                reason, detail = self._reason(rid, u)
                raw = self._raw(rid, u.step)
                origin = Message(self.state.topic, self.state.partition, u.step.offset,
                                 rid.encode(), raw)  # fmt: skip
                out.rejected.append((origin, Rejection(reason, detail, raw)))
                report.steps.remove(u.step)
        body = folded.body
        if body is None:
            if not report.steps:
                del self.state.open[rid]
            return before[0] != len(report.steps)
        received = folded.applied[0].step.ts
        sla = max(body.due - received, 1e-9)
        closed_at = folded.closed_at
        end = min(settled, closed_at if closed_at is not None else float("inf"))
        while report.sla_points < len(self.ladder):
            # Each rung is judged once, at the instant the report passes it, so the alarm's
            # rows follow from the report's own time, not from when a tick noticed.
            rung = self.ladder[report.sla_points]
            at = received + rung * sla
            if at >= end:
                break
            state = folded.as_of(at)
            assert state is not None
            ctx = self._context(rid, body, state)
            value = math.nextafter(rung, math.inf)  # just past the rung
            out.alarms.extend(self.alarms.observe(SLA_KIND, rid, at, value, ctx))
            report.sla_points += 1
        key = f"{SLA_KIND}/{rid}"
        if closed_at is not None and closed_at < settled:
            machine = self.alarms.state.machines.get(key)
            if machine is not None and machine.level:
                at = max(closed_at, machine.last_ts)
                ctx = self._context(rid, body, folded.applied[-1])
                out.alarms.extend(self.alarms.observe(SLA_KIND, rid, at, 0.0, ctx))
            out.alarms.extend(self.alarms.sweep(settled, [key]))
            self.state.closed[rid] = Closed(folded.applied[-1].status, closed_at,
                                            report.max_ts, report.seen_at)  # fmt: skip
            del self.state.open[rid]
            for s in report.steps:  # steps after the close that are not yet settled
                if s.ts >= settled and all(a.step is not s for a in folded.applied):
                    raw = self._raw(rid, s)
                    problem = transition_problem(folded.applied[-1].status, s.kind)
                    out.rejected.append((
                        Message(self.state.topic, self.state.partition, s.offset, rid.encode(), raw),
                        Rejection(Reason.ILLEGAL_TRANSITION, f"report {rid!r}: {problem}", raw),
                    ))  # fmt: skip
            return True
        memory = self.cfg.open_memory_days * DAY_S
        if report.max_ts + memory < settled:
            del self.state.open[rid]
            out.alarms.extend(
                self.alarms.forget(SLA_KIND, rid, report.max_ts + memory, AlarmReason.SILENCE)
            )
            log.warning(
                "open report forgotten: no event for open_memory_days",
                extra={"report_id": rid, "status": report.status,
                       "days": self.cfg.open_memory_days},
            )  # fmt: skip
            return True
        return before != (len(report.steps), report.sla_points, len(out.alarms))

    @staticmethod
    def _raw(rid: str, s: Step) -> bytes:
        """The step as an event again, for a dead letter judged after its message."""
        event: dict[str, Any] = {"report_id": rid, "kind": s.kind.value,
                                 "timestamp": _dt(s.ts).isoformat(), "source": s.source}  # fmt: skip
        for name in ("department", "actor", "note"):
            if getattr(s, name) is not None:
                event[name] = getattr(s, name)
        if s.mover is not None:
            event["actor_department"] = s.mover
        if s.body is not None:
            event.update(category=s.body.category, text=s.body.text, lat=s.body.lat,
                         lon=s.body.lon, photo_urls=s.body.photo_urls, channel=s.body.channel)  # fmt: skip
        return orjson.dumps(event)


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
