from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest
from pydantic import ValidationError

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import load_rules
from schemas.deadletter import Reason
from schemas.reports import ReportEvent, ReportStatus, load_routing, transition_problem
from schemas.settings import Settings
from schemas.spatial import gazetteer
from streams.pipeline import Emitted, Message
from streams.reports_logic import ContactsPartition, ReportsPartition, reports_pipeline

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def received(
    rid: str, category: str = "jalan_rusak", hours: float = 0, **kw: Any
) -> dict[str, Any]:
    return {"report_id": rid, "kind": "received", "timestamp": at(hours), "category": category,
            "text": "Jalan berlubang di depan pasar", "lat": -6.99, "lon": 110.42,
            "photo_urls": ["https://example.org/a.jpg"], "channel": "api", **kw}  # fmt: skip


def step(rid: str, kind: str, hours: float, **kw: Any) -> dict[str, Any]:
    return {"report_id": rid, "kind": kind, "timestamp": at(hours), "actor": "budi", **kw}


def partition(saved: bytes | None = None) -> ReportsPartition:
    return ReportsPartition(
        Settings(_env_file=None), load_rules(), load_routing(), gazetteer(), saved
    )  # type: ignore[call-arg]


def feed(
    part: ReportsPartition, items: list[dict[str, Any]], now: datetime = NOW
) -> tuple[Emitted, list[Any]]:
    out, rejected = Emitted(), []
    for offset, item in enumerate(items, start=part.offset("r") + 1):
        _, rej = part.handle(
            Message("reports.events", 0, offset, None, orjson.dumps(item)), now, out
        )
        rejected += rej
    part.tick(now, out)
    return out, rejected


def report_rows(out: Emitted) -> list[dict[str, Any]]:
    return [
        dict(zip(ddl.CITIZEN_REPORT_COLUMNS, r, strict=True))
        for r in out.tables[ddl.CITIZEN_REPORTS][1]
    ]


def test_lifecycle_table() -> None:
    R, A, P, D, X = (ReportStatus.RECEIVED, ReportStatus.ASSIGNED, ReportStatus.IN_PROGRESS,
                     ReportStatus.RESOLVED, ReportStatus.REJECTED)  # fmt: skip
    assert transition_problem(None, R) is None
    assert transition_problem(None, A) is not None
    assert transition_problem(R, R) is not None
    assert transition_problem(R, A) is None and transition_problem(R, X) is None
    assert transition_problem(R, P) is not None and transition_problem(R, D) is not None
    assert transition_problem(A, P) is None and transition_problem(A, D) is not None
    assert transition_problem(P, D) is None and transition_problem(P, X) is None
    # Re-assignment while open needs another department.
    assert transition_problem(A, A, "Disperkim", "Disperkim") is not None
    assert transition_problem(A, A, "Disperkim", None) is not None
    assert transition_problem(A, A, "Disperkim", "Dinas Lingkungan Hidup") is None
    assert transition_problem(P, A, "Disperkim", "Dinas Lingkungan Hidup") is None
    for closed in (D, X):
        assert all(transition_problem(closed, s, "a", "b") for s in ReportStatus)


def test_received_needs_the_report_and_photos_must_be_http() -> None:
    with pytest.raises(ValidationError, match="category"):
        ReportEvent.model_validate({**received("r1"), "category": None})
    with pytest.raises(ValidationError, match="photo_urls"):
        ReportEvent.model_validate({**received("r1"), "photo_urls": ["ftp://example.org/x.jpg"]})
    with pytest.raises(ValidationError, match="photo_urls"):
        ReportEvent.model_validate({**received("r1"), "photo_urls": ["not a url"]})


def test_a_report_is_routed_and_moves_through_its_lifecycle() -> None:
    part = partition()
    out, rejected = feed(part, [received("r1"), step("r1", "assigned", 0.5),
                                step("r1", "in_progress", 1), step("r1", "resolved", 2, note="ditambal")])  # fmt: skip
    assert rejected == []
    rows = report_rows(out)
    assert [(r["version"], r["status"]) for r in rows] == [
        (1, "received"), (2, "assigned"), (3, "in_progress"), (4, "resolved")]  # fmt: skip
    last = rows[-1]
    assert last["department"] == "Dinas Pekerjaan Umum" and last["kecamatan"] == "Semarang Selatan"
    assert last["due_at"] == T0 + timedelta(hours=72)
    assert last["closed_at"] == T0 + timedelta(hours=2) and last["last_note"] == "ditambal"
    assert last["photo_urls"] == ["https://example.org/a.jpg"]
    events = out.tables[ddl.REPORT_EVENTS][1]
    assert [(e[0], e[1], e[3]) for e in events] == [
        ("r1", 1, "received"), ("r1", 2, "assigned"), ("r1", 3, "in_progress"), ("r1", 4, "resolved")]  # fmt: skip
    assert part.state.open == {} and part.state.closed["r1"].status == "resolved"


def test_illegal_steps_are_dead_lettered_and_the_stream_goes_on() -> None:
    part = partition()
    out, rejected = feed(part, [
        received("r1"),
        step("r1", "resolved", 0.1),                       # received cannot jump to resolved
        step("nope", "assigned", 0.1),                     # never received
        received("r2", category="ufo"),                    # unknown category
        {**received("r3"), "lat": -7.5},                   # outside the city
        step("r1", "assigned", 0.2, department="Dinas Rahasia"),  # unknown department
        received("r1"),                                    # received twice
        step("r1", "rejected", 0.3, note="duplikat"),
        step("r1", "assigned", 0.4),                       # closed is terminal
        {"report_id": "r4", "kind": "received"},           # schema violation
    ])  # fmt: skip
    reasons = [(r.reason, r.detail.split(":")[0]) for r in rejected]
    assert [r for r, _ in reasons] == [
        Reason.ILLEGAL_TRANSITION, Reason.UNKNOWN_ENTITY, Reason.UNKNOWN_ENTITY,
        Reason.OUTSIDE_SERVICE_AREA, Reason.UNKNOWN_ENTITY, Reason.ILLEGAL_TRANSITION,
        Reason.ILLEGAL_TRANSITION, Reason.SCHEMA,
    ]  # fmt: skip
    assert "received cannot become resolved" in rejected[0].detail
    assert [r["status"] for r in report_rows(out)] == ["received", "rejected"]


def test_reassignment_changes_the_department() -> None:
    part = partition()
    out, rejected = feed(part, [received("r1", category="sampah"), step("r1", "assigned", 0.1),
                                step("r1", "in_progress", 0.2),
                                step("r1", "assigned", 0.3, department="Disperkim"),
                                step("r1", "assigned", 0.4, department="Disperkim")])  # fmt: skip
    assert [r.reason for r in rejected] == [Reason.ILLEGAL_TRANSITION]
    rows = report_rows(out)
    assert rows[0]["department"] == "Dinas Lingkungan Hidup"
    assert (rows[-1]["status"], rows[-1]["department"]) == ("assigned", "Disperkim")


def test_sla_breach_escalates_by_how_late_and_clears_on_resolution() -> None:
    part = partition()
    # sampah: 24 h SLA.
    out, _ = feed(part, [received("r1", category="sampah")], now=NOW)
    assert out.alarms == []
    late = T0 + timedelta(hours=30)
    feed_out, _ = feed(part, [received("r9", category="jalan_rusak", hours=29)], now=late)
    alarms = feed_out.alarms
    assert [(a.kind, a.entity, a.state.value, a.level) for a in alarms] == [
        ("report_sla_breach", "r1", "raised", "overdue")]  # fmt: skip
    # The breach started at the due time, whenever it was noticed.
    assert alarms[0].started_at == T0 + timedelta(hours=24)
    assert alarms[0].context["department"] == "Dinas Lingkungan Hidup"
    out = Emitted()
    part.tick(late + timedelta(hours=10), out)  # clock 39 h: 1.6 times the SLA
    assert [(a.state.value, a.level, a.severity.value) for a in out.alarms] == [
        ("updated", "overdue long", "major")]  # fmt: skip
    out, rejected = feed(part, [step("r1", "assigned", 40), step("r1", "in_progress", 40.5),
                                step("r1", "resolved", 41)], now=late + timedelta(hours=11))  # fmt: skip
    assert rejected == []
    assert [(a.state.value, a.entity) for a in out.alarms] == [("cleared", "r1")]
    assert "report_sla_breach/r1" not in part.alarms.state.machines


def test_event_clock_runs_between_events_but_a_replay_uses_event_time() -> None:
    part = partition()
    feed(part, [received("old", category="kebakaran")], now=T0 + timedelta(days=10))
    # Received long ago (2 h SLA) but seen only now: the clock is the event's time.
    assert part.clock(T0 + timedelta(days=10)) == T0.timestamp()
    out = Emitted()
    part.tick(T0 + timedelta(days=10, hours=3.5), out)  # 3.5 wall hours later
    assert [(a.state.value, a.level) for a in out.alarms] == [("raised", "overdue long")]


def test_state_survives_a_checkpoint_round_trip() -> None:
    part = partition()
    feed(
        part,
        [received("r1"), step("r1", "assigned", 0.1), received("r2"), step("r2", "rejected", 0.2)],
    )
    again = partition(part.dumps())
    assert again.offset("r") == part.offset("r") == 3
    assert again.state == msgspec.json.decode(part.dumps(), type=type(part.state))
    _, rejected = feed(again, [step("r1", "in_progress", 1), step("r2", "assigned", 1)])
    assert [r.reason for r in rejected] == [Reason.ILLEGAL_TRANSITION]
    assert again.state.open["r1"].status == "in_progress" and again.state.open["r1"].version == 3


def test_closed_reports_are_forgotten_after_the_memory_window() -> None:
    part = partition()
    feed(part, [received("r1"), step("r1", "rejected", 0.1)])
    out = Emitted()
    assert part.tick(NOW + timedelta(days=31), out) is True
    assert part.state.closed == {}


def test_contacts_go_to_their_own_table_only() -> None:
    contacts = ContactsPartition(load_rules())
    out = Emitted()
    good = {"report_id": "r1", "timestamp": at(0), "name": "Siti", "phone": "+62 812-3456-7890"}
    empty = {"report_id": "r2", "timestamp": at(0)}
    bad_email = {"report_id": "r3", "timestamp": at(0), "email": "nope"}
    rejected = []
    for i, item in enumerate([good, empty, bad_email]):
        rejected += contacts.handle(
            Message("reports.contacts", 0, i, None, orjson.dumps(item)), NOW, out
        )[1]
    assert list(out.tables) == [ddl.REPORT_CONTACTS]
    assert out.tables[ddl.REPORT_CONTACTS][1][0][:4] == ("r1", T0, "Siti", "+62 812-3456-7890")
    assert [r.reason for r in rejected] == [Reason.SCHEMA, Reason.SCHEMA]


def test_the_pipeline_gives_each_topic_its_processor() -> None:
    pipe = reports_pipeline(Settings(_env_file=None), load_rules(), load_routing(), gazetteer(),  # type: ignore[call-arg]
                            None, None, None, contacts_topic="reports.contacts")  # type: ignore[arg-type]  # fmt: skip
    assert isinstance(pipe.factory(("reports.contacts", 0), None), ContactsPartition)
    assert isinstance(pipe.factory(("reports.events", 2), None), ReportsPartition)


def test_open_reports_nobody_closes_are_forgotten_with_their_sla_alarm_cleared(caplog) -> None:  # type: ignore[no-untyped-def]
    from schemas.alarms import AlarmState
    from schemas.alarms import Reason as AlarmReason

    part = partition()
    memory_s = part.cfg.open_memory_days * 86400
    assert part.cfg.open_memory_days == 365  # the default
    # r1 breaches its SLA and is then left open; r2 is updated much later and stays.
    feed(part, [received("r1", category="sampah"), received("r2", hours=1)])
    out = Emitted()
    part.tick(T0 + timedelta(days=2), out)
    assert [(a.entity, a.state.value) for a in out.alarms] == [("r1", "raised")]
    late = T0 + timedelta(days=200)
    feed(part, [step("r2", "assigned", 200 * 24)], now=late)
    expiry = T0.timestamp() + memory_s
    out = Emitted()
    with caplog.at_level("WARNING", logger="streams.reports_logic"):
        assert part.tick(T0 + timedelta(days=366), out) is True
    assert set(part.state.open) == {"r2"}
    (cleared,) = [a for a in out.alarms if a.entity == "r1"]
    assert (cleared.state, cleared.reason) == (AlarmState.CLEARED, AlarmReason.SILENCE)
    # Cleared at the moment it expired, not whenever the tick noticed: replays agree.
    assert cleared.cleared_at is not None and cleared.cleared_at.timestamp() == expiry
    assert "report_sla_breach/r1" not in part.alarms.state.machines
    assert [r.report_id for r in caplog.records if "forgotten" in r.getMessage()] == ["r1"]  # type: ignore[attr-defined]
    # A later step for the forgotten report is refused as unknown, not applied.
    _, rejected = feed(part, [step("r1", "assigned", 367 * 24)], now=T0 + timedelta(days=367))
    assert [r.reason for r in rejected] == [Reason.UNKNOWN_ENTITY]
