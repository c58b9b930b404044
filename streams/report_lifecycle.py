"""One citizen report's life, folded in event time.

A report keeps every step that reached it, in the order of the steps' own times, and its
status, department and rows are what folding those steps from ``received`` onwards gives.
So a step that arrives before the step it follows (a phone app that queues, two staff on
one report) is not refused: it waits in the report until the report's clock, less the
lateness, has passed it; only a step that still does not fit then is dead-lettered. The
rows a report gets therefore depend on its steps, not on the order they came in.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from schemas.reports import TERMINAL, ReportStatus, transition_problem

# Steps at the same instant fold in lifecycle order.
RANK = {
    ReportStatus.RECEIVED: 0,
    ReportStatus.ASSIGNED: 1,
    ReportStatus.IN_PROGRESS: 2,
    ReportStatus.RESOLVED: 3,
    ReportStatus.REJECTED: 3,
}


class Body(msgspec.Struct):
    """What ``received`` says about the report itself."""

    category: str
    department: str
    kecamatan: str
    text: str
    lat: float
    lon: float
    photo_urls: list[str]
    channel: str
    due: float


class Step(msgspec.Struct):
    kind: ReportStatus
    ts: float
    offset: int  # where it came from, for a dead letter judged later
    source: str = "unknown"
    actor: str | None = None
    note: str | None = None
    department: str | None = None
    body: Body | None = None
    mover: str | None = None  # the department that moved it (None: the room)
    # What report_events holds for it, as last written (seq 0: not written).
    seq: int = 0
    written_department: str | None = None

    def content(self) -> tuple[object, ...]:
        return (self.kind, self.ts, self.source, self.actor, self.note, self.department,
                self.body, self.mover)  # fmt: skip


class Applied(NamedTuple):
    step: Step
    status: ReportStatus
    department: str


class Unfit(NamedTuple):
    step: Step
    problem: str
    received: bool  # whether the report had been received before this step
    forbidden: bool = False  # moved by a department the report did not belong to then


class Folded(NamedTuple):
    applied: list[Applied]
    unfit: list[Unfit]

    @property
    def body(self) -> Body | None:
        return self.applied[0].step.body if self.applied else None

    @property
    def closed_at(self) -> float | None:
        last = self.applied[-1] if self.applied else None
        return last.step.ts if last and last.status in TERMINAL else None

    def as_of(self, ts: float) -> Applied | None:
        """The report's state at ``ts`` in its own time."""
        return next((a for a in reversed(self.applied) if a.step.ts <= ts), None)


class Report(msgspec.Struct):
    steps: list[Step] = msgspec.field(default_factory=list)
    max_ts: float = float("-inf")
    seen_at: float = 0.0  # wall time at which max_ts last advanced
    arrived_at: float = 0.0  # wall time of the last step to arrive
    version: int = 0  # of the citizen_reports row last written
    status: ReportStatus | None = None
    sla_points: int = 0  # SLA ladder points already judged
    seq_base: int = 0  # report_events seqs written before this report was folded here

    def clock(self, now_ts: float) -> float:
        """The report's event clock: its newest step's time, run on by the wall time since
        (so a quiet report still ages, and a replay of old steps runs on their time)."""
        return self.max_ts + max(0.0, now_ts - self.seen_at)

    def add(self, step: Step, now_ts: float) -> bool:
        """Keep ``step`` in time order; False if the report already holds it (redelivery)."""
        content = step.content()
        if any(s.content() == content for s in self.steps):
            return False
        self.steps.append(step)
        self.arrived_at = now_ts
        self.steps.sort(key=lambda s: (s.ts, RANK[s.kind]))
        if step.ts > self.max_ts:
            self.max_ts, self.seen_at = step.ts, now_ts
        return True

    def fold(self) -> Folded:
        status: ReportStatus | None = None
        department: str | None = None
        applied: list[Applied] = []
        unfit: list[Unfit] = []
        for s in self.steps:
            problem = transition_problem(status, s.kind, department, s.department)
            if problem:
                unfit.append(Unfit(s, problem, status is not None))
                continue
            if s.mover is not None and department is not None and s.mover != department:
                # Judged on the report as it stood at the step, in its own time: the API
                # checked against a table that lags, and two moves can race.
                who = s.actor or "someone"
                unfit.append(Unfit(s, f"{who} of {s.mover} may not move a report of "
                                      f"{department}", True, forbidden=True))  # fmt: skip
                continue
            if s.kind is ReportStatus.RECEIVED:
                assert s.body is not None
                department = s.body.department
            elif s.kind is ReportStatus.ASSIGNED and s.department:
                department = s.department
            status = s.kind
            assert department is not None
            applied.append(Applied(s, status, department))
        self.status = status
        return Folded(applied, unfit)


class Closed(msgspec.Struct):
    """A settled, closed report: remembered a while so late steps are refused, not new."""

    status: ReportStatus
    at: float
    max_ts: float = 0.0
    seen_at: float = 0.0

    def clock(self, now_ts: float) -> float:
        return self.max_ts + max(0.0, now_ts - self.seen_at)


def from_saved_v1(old: dict[str, Any], sla_points: int) -> Report:
    """A report saved before reports were folded (its current status only): rebuilt as the
    shortest legal history that reaches that status, marked as already written, so the
    next step continues its rows rather than rewriting them."""
    status = ReportStatus(old["status"])
    department = old["department"]
    body = Body(category=old["category"], department=department, kecamatan=old["kecamatan"],
                text=old["text"], lat=old["lat"], lon=old["lon"], photo_urls=old["photo_urls"],
                channel=old["channel"], due=old["due"])  # fmt: skip
    steps = [Step(ReportStatus.RECEIVED, old["received"], -1, body=body)]
    if status is not ReportStatus.RECEIVED:
        steps.append(Step(ReportStatus.ASSIGNED, old["updated"], -1, department=department))
    if status is ReportStatus.IN_PROGRESS:
        steps.append(Step(ReportStatus.IN_PROGRESS, old["updated"], -1))
    steps[-1].actor, steps[-1].note = old.get("last_actor"), old.get("last_note")
    version = int(old.get("version", len(steps)))
    base = max(0, version - len(steps))
    for i, s in enumerate(steps, base + 1):
        s.seq, s.written_department = i, department
    return Report(steps=steps, max_ts=old["updated"], seen_at=0.0, version=version,
                  status=status, sla_points=sla_points, seq_base=base)  # fmt: skip
