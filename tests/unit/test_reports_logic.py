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
SETTLE = timedelta(seconds=Settings(_env_file=None).window_allowed_lateness_s + 1)  # type: ignore[call-arg]


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
    # A moment past the lateness: steps held in case an earlier one was on its way are judged.
    part.tick(now + SETTLE, out)
    return out, rejected + [r for _, r in out.rejected]


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
        received("r1", hours=0.25),                        # received twice
        step("r1", "rejected", 0.3, note="duplikat"),
        step("r1", "assigned", 0.4),                       # closed is terminal
        {"report_id": "r4", "kind": "received"},           # schema violation
    ])  # fmt: skip
    # Steps that might yet fit (one they follow could still be on its way) are judged once
    # their report's clock less the lateness has passed them; the others at once.
    reasons = sorted((r.reason, r.detail.split(":")[0]) for r in rejected)
    assert reasons == sorted([
        (Reason.ILLEGAL_TRANSITION, "report 'r1'"), (Reason.UNKNOWN_ENTITY, "report 'nope'"),
        (Reason.UNKNOWN_ENTITY, "unknown category 'ufo'"),
        (Reason.OUTSIDE_SERVICE_AREA, "lat=-7.5 lon=110.42 outside Kota Semarang"),
        (Reason.UNKNOWN_ENTITY, "unknown department 'Dinas Rahasia'"),
        (Reason.ILLEGAL_TRANSITION, "report 'r1'"), (Reason.ILLEGAL_TRANSITION, "report 'r1'"),
        (Reason.SCHEMA, "timestamp"),
    ])  # fmt: skip
    details = [r.detail for r in rejected]
    assert any("received cannot become resolved" in d for d in details)
    assert any("report already received" in d for d in details)
    assert any("closed report cannot become assigned" in d for d in details)
    # A step judged after its message still names where it came from.
    (late,) = [(m, r) for m, r in out.rejected if "resolved" in r.detail]
    assert (late[0].topic, late[0].partition, late[0].offset) == ("reports.events", 0, 1)
    assert orjson.loads(late[1].raw)["kind"] == "resolved"
    assert [r["status"] for r in report_rows(out)] == ["received", "rejected"]


def test_a_step_that_overtakes_the_one_it_follows_is_folded_in_its_own_time() -> None:
    part = partition()
    out, rejected = feed(part, [received("r1"), step("r1", "in_progress", 0.2),
                                step("r1", "assigned", 0.1)])  # fmt: skip
    assert rejected == []
    assert [(r["version"], r["status"]) for r in report_rows(out)] == [
        (1, "received"), (3, "in_progress")]  # fmt: skip
    events = out.tables[ddl.REPORT_EVENTS][1]
    assert [(e[1], e[3]) for e in events] == [(1, "received"), (2, "assigned"), (3, "in_progress")]
    # Redelivered, it changes nothing.
    again, rejected = feed(part, [step("r1", "assigned", 0.1)])
    assert rejected == [] and not again.tables


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


def test_a_replay_is_judged_in_its_own_time_and_an_old_open_report_against_today() -> None:
    part = partition()
    # A fire report (2 h SLA) and its close 5 h later, replayed 10 days on in one burst: its
    # breach runs in the report's own time (due at 2 h, 1.5x at 3 h, cleared at 5 h), and a
    # tick in the middle of the burst judges nothing yet.
    replay = T0 + timedelta(days=10)
    out = Emitted()
    part.handle(Message("reports.events", 0, 0, None,
                        orjson.dumps(received("h", category="kebakaran"))), replay, out)  # fmt: skip
    part.tick(replay + timedelta(seconds=1), out)
    assert out.alarms == []
    out, _ = feed(part, [step("h", "assigned", 1), step("h", "in_progress", 4),
                         step("h", "resolved", 5)], now=replay + timedelta(seconds=2))  # fmt: skip
    assert [(a.state.value, a.level, a.last_seen) for a in out.alarms] == [
        ("raised", "overdue", T0 + timedelta(hours=2)),
        ("updated", "overdue long", T0 + timedelta(hours=3)),
        ("cleared", "normal", T0 + timedelta(hours=5)),
    ]  # fmt: skip
    # Received long ago and still open once quiet for the lateness: overdue today, each
    # rung stamped at the instant the report passed it.
    out, _ = feed(part, [received("old", category="kebakaran")], now=replay)
    assert [(a.state.value, a.level, a.last_seen) for a in out.alarms] == [
        ("raised", "overdue", T0 + timedelta(hours=2)),
        ("updated", "overdue long", T0 + timedelta(hours=3)),
        ("updated", "overdue far", T0 + timedelta(hours=6)),
    ]  # fmt: skip


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
    assert [(a.entity, a.state.value) for a in out.alarms] == [("r1", "raised"), ("r1", "updated")]
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


def test_reports_saved_before_folding_continue_their_rows() -> None:
    """A checkpoint from before reports were folded in event time (current status only)."""
    old = {"offset": 7, "open": {"r1": {
        "status": "in_progress", "category": "jalan_rusak", "department": "Disperkim",
        "kecamatan": "Semarang Selatan", "text": "lubang", "lat": -6.99, "lon": 110.42,
        "photo_urls": [], "channel": "api", "received": T0.timestamp(),
        "updated": T0.timestamp() + 3600, "due": T0.timestamp() + 72 * 3600, "version": 5,
        "last_actor": "budi", "last_note": None}},
        "closed": {"r0": {"status": "resolved", "at": T0.timestamp()}}}  # fmt: skip
    part = partition(orjson.dumps(old))
    assert part.offset("r") == 7 and part.state.closed["r0"].status == "resolved"
    out, rejected = feed(part, [step("r1", "resolved", 2, note="beres")])
    assert rejected == []
    rows = report_rows(out)
    assert [(r["version"], r["status"], r["department"]) for r in rows] == [
        (6, "resolved", "Disperkim")]  # fmt: skip
    assert [(e[1], e[3]) for e in out.tables[ddl.REPORT_EVENTS][1]] == [(6, "resolved")]


def test_the_worker_refuses_a_move_by_another_department_as_forbidden() -> None:
    """The API checks moves against a table that lags; two moves can race: a reassignment
    lands first in event time, then a move by the old department. The worker judges each
    move on the report as it stood at that step."""
    part = partition()
    dpu, dlh = "Dinas Pekerjaan Umum", "Dinas Lingkungan Hidup"
    out, rejected = feed(part, [
        received("r1"),  # jalan_rusak: routed to Dinas Pekerjaan Umum
        step("r1", "assigned", 0.1, department=dlh, actor_department=dpu),  # handed over
        step("r1", "in_progress", 0.2, actor_department=dpu),  # no longer theirs
        step("r1", "in_progress", 0.3, actor_department=dlh),
        step("r1", "resolved", 0.4),  # a room-wide actor (no department)
    ])  # fmt: skip
    assert [(r.reason, r.detail) for r in rejected] == [(
        Reason.FORBIDDEN,
        f"report 'r1': budi of {dpu} may not move a report of {dlh}",
    )]  # fmt: skip
    assert orjson.loads(rejected[0].raw)["actor_department"] == dpu
    rows = report_rows(out)
    assert (rows[-1]["status"], rows[-1]["department"]) == ("resolved", dlh)
