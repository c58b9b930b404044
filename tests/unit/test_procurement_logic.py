from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.ocds_replay import OcdsReplaySource
from connectors.procurement_simulator import ProcurementSimulator
from schemas.alarm_rules import load_rules
from schemas.alarms import AlarmCommand, CommandAction
from schemas.deadletter import Reason
from schemas.procurement import TenderEvent
from schemas.settings import Settings
from streams.pipeline import Emitted, Message
from streams.procurement_logic import ProcurementPartition

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "procurement"
NOW = datetime(2027, 6, 1, tzinfo=UTC)
SETTLE = timedelta(seconds=Settings(_env_file=None).window_allowed_lateness_s + 1)  # type: ignore[call-arg]
OCID_1, OCID_2 = "OCDS-87SD3T-AD-SF-DRM-063-2015", "OCDS-87SD3T-AD-SF-DRM-065-2015"


def partition(saved: bytes | None = None) -> ProcurementPartition:
    return ProcurementPartition(Settings(_env_file=None), load_rules(), saved)  # type: ignore[call-arg]


def feed(part: ProcurementPartition, batches: Sequence[list[TenderEvent] | bytes],
         now: datetime = NOW) -> tuple[Emitted, list]:  # type: ignore[type-arg]  # fmt: skip
    out, rejected = Emitted(), []
    for offset, batch in enumerate(batches, start=part.offset("p") + 1):
        value = batch if isinstance(batch, bytes) else (
            b"[" + b",".join(e.model_dump_json().encode() for e in batch) + b"]")  # fmt: skip
        _, rej = part.handle(Message("procurement.tender-events", 0, offset, None, value), now, out)
        rejected += rej
    # A moment past the lateness: findings are judged once their evidence has settled.
    part.tick(now + SETTLE, out)
    return out, rejected


def ocds(n: int) -> list[TenderEvent]:
    path = FIXTURES / f"ocdskit_cdmx_release-package-{n}.json"
    return OcdsReplaySource([path]).read(path)[0]


def tenders(out: Emitted) -> dict[str, dict]:  # type: ignore[type-arg]
    from schemas import clickhouse_ddl as ddl

    columns, rows = out.tables["procurement_tenders"]
    assert tuple(columns) == ddl.TENDER_COLUMNS
    return {r[0]: dict(zip(columns, r, strict=True)) for r in rows}  # last row per tender wins


def test_the_ocds_samples_raise_exactly_their_three_flags() -> None:
    part = partition()
    out, rejected = feed(part, [ocds(1), ocds(2)])
    assert rejected == []
    raised = {(a.kind, a.entity) for a in out.alarms if a.state.value == "raised"}
    assert raised == {
        ("award_near_hps", f"ocds:{OCID_1}"),
        ("tender_period_short", f"ocds:{OCID_1}"),
        ("tender_single_bidder", f"ocds:{OCID_2}"),
    }
    assert len(out.alarms) == 3 and all(a.domain == "procurement" for a in out.alarms)
    rows = tenders(out)
    one, two = rows[f"ocds:{OCID_1}"], rows[f"ocds:{OCID_2}"]
    assert (one["award_ratio"], one["tender_days"], one["bidders"], one["stage"]) == (
        1.0,
        0.0,
        2,
        "contract",
    )
    assert sorted(one["flags"]) == ["award_near_hps", "tender_period_short"]
    # The USD award is compared in MXN only through the rate of the second release: 91 %.
    assert two["award_currency"] == "USD" and two["estimate_currency"] == "MXN"
    assert round(two["award_ratio"], 4) == round(75464.96 * 17.7526 / 1471566.72, 4)
    assert two["flags"] == ["tender_single_bidder"] and two["tender_days"] == 3.0
    flags = {(r[0], r[2]) for r in out.tables["procurement_flags"][1]}
    assert flags == {(k, e) for k, e in raised}
    near = next(r for r in out.tables["procurement_flags"][1] if r[0] == "award_near_hps")
    assert near[9] == 1.0 and near[10] == 0.99


def test_without_a_rate_a_foreign_currency_award_is_not_compared() -> None:
    part = partition()
    out, _ = feed(part, [ocds(2)[:4]])  # the first release only: USD award, no exchangeRate
    row = tenders(out)[f"ocds:{OCID_2}"]
    assert row["award_ratio"] is None and row["award_in_estimate_currency"] is None


def test_replays_and_repeated_releases_raise_nothing_twice_even_after_a_manual_clear() -> None:
    part = partition()
    out, _ = feed(part, [ocds(1), ocds(2)])
    alarm = next(a for a in out.alarms if a.kind == "tender_single_bidder")
    cleared = part.alarms.command(AlarmCommand(alarm_id=alarm.id, action=CommandAction.CLEAR,
                                               by="analyst", at=NOW))  # fmt: skip
    assert [a.state.value for a in cleared] == ["cleared"]
    out, _ = feed(part, [ocds(2), ocds(1)])
    assert out.alarms == []
    assert "procurement_flags" not in out.tables
    assert len(tenders(out)) == 2
    restored = partition(part.dumps())
    out, _ = feed(restored, [ocds(1)])
    assert out.alarms == []


def award(tender: str, winner: str, day: int, agency: str = "dpu") -> list[TenderEvent]:
    ts = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)
    common = {"source": "spse", "tender_id": tender, "agency_id": agency, "agency_name": "Dinas PU"}
    return [
        TenderEvent.model_validate({**common, "event_id": f"{tender}/a", "kind": "announced", "ts": ts,
                                    "method": "Pengadaan Langsung", "estimate_amount": 100.0,
                                    "estimate_currency": "IDR"}),
        TenderEvent.model_validate({**common, "event_id": f"{tender}/w", "kind": "awarded", "ts": ts,
                                    "winner_id": winner, "amount": 99.5, "currency": "IDR"}),
    ]  # fmt: skip


def test_repeated_winner_counts_awards_per_agency_within_the_window() -> None:
    part = partition()
    out, _ = feed(part, [award("t1", "cv-a", 0), award("t2", "cv-a", 300), award("t3", "cv-a", 310),
                         award("t4", "cv-b", 311), award("x1", "cv-a", 312, agency="other")])  # fmt: skip
    assert out.alarms == []  # t1 is outside the 180-day window; other agencies do not count
    # Non-competitive method: an award at 99.5 % of the estimate is no flag.
    assert all(not r["flags"] for r in tenders(out).values())
    out, _ = feed(
        part, [award("t5", "cv-a", 320), award("t5", "cv-a", 320), award("t6", "cv-a", 321)]
    )
    assert [(a.kind, a.entity, a.state.value) for a in out.alarms] == [
        ("repeated_winner", "dpu/cv-a", "raised")]  # fmt: skip
    assert out.alarms[0].context["measured"] == 3
    # Every award that keeps the count at the threshold is a finding; the alarm stays one.
    assert [r[2] for r in out.tables["procurement_flags"][1]] == ["spse:t5", "spse:t6"]


def test_bad_events_are_rejected_alone() -> None:
    part = partition()
    good = award("t1", "cv-a", 0)
    future = good[0].model_copy(
        update={"event_id": "f", "tender_id": "f", "ts": NOW + timedelta(hours=2)}
    )
    moved = good[0].model_copy(update={"event_id": "m", "agency_id": "elsewhere"})
    out, rejected = feed(part, [[*good, future, moved], b"{not json", b'[{"kind": "bid"}]'])
    assert [r.reason for r in rejected] == [
        Reason.IMPOSSIBLE_VALUE,
        Reason.FUTURE_TIMESTAMP,
        Reason.INVALID_JSON,
        Reason.SCHEMA,
    ]
    assert set(tenders(out)) == {"spse:t1"}


def test_state_forgets_old_tenders_by_wall_clock() -> None:
    part = partition()
    feed(part, [award("t1", "cv-a", 0)], now=NOW)
    feed(part, [award("t2", "cv-b", 1)], now=NOW + timedelta(days=300))
    feed(part, [], now=NOW + timedelta(days=450))
    assert set(part.state.tenders) == {"spse:t2"}


def test_simulated_red_flags_are_found() -> None:
    sim = ProcurementSimulator(seed=5, start=1_780_000_000, realtime=False)
    batches = [sim.events_at(sim.start + i * 30) for i in range(200)]
    part = partition()
    out, rejected = feed(
        part, [b for b in batches if b], now=datetime.fromtimestamp(1_790_000_000, UTC)
    )
    assert rejected == []
    found = {(a.kind, a.entity) for a in out.alarms if a.state.value == "raised"}
    meant = {(flag, key) for key, flags in sim.injected.items() for flag in flags}
    assert meant and meant <= found
    assert any(k == "repeated_winner" and e.endswith("npwp-cv-karya-mandiri") for k, e in found)


def test_forgotten_tenders_clear_their_open_flags_and_leave_no_machine() -> None:
    part = partition()
    out, _ = feed(part, [ocds(1), ocds(2)])
    assert len(out.alarms) == 3 and len(part.state.alarms.machines) == 3
    out, _ = feed(part, [], now=NOW + timedelta(days=401))
    assert part.state.tenders == {}
    assert sorted((a.kind, a.state.value, a.reason.value) for a in out.alarms) == [
        ("award_near_hps", "cleared", "silence"),
        ("tender_period_short", "cleared", "silence"),
        ("tender_single_bidder", "cleared", "silence"),
    ]
    assert part.state.alarms.machines == {}


def test_wins_of_suppliers_not_seen_for_the_retention_are_forgotten() -> None:
    part = partition()
    out, _ = feed(part, [award("t1", "cv-a", 0), award("t2", "cv-a", 1), award("t3", "cv-a", 2)])
    assert [(a.entity, a.state.value) for a in out.alarms] == [("dpu/cv-a", "raised")]
    # Within the retention (event time) the supplier's newest win stays in state.
    feed(part, [award("t4", "cv-b", 300)])
    assert set(part.state.wins) == {"dpu/cv-a", "dpu/cv-b"}
    assert [w.tender_key for w in part.state.wins["dpu/cv-a"]] == ["spse:t1", "spse:t2", "spse:t3"]
    # 401 days after its newest win (retention 400 > window 180): forgotten, alarm cleared.
    out, _ = feed(part, [award("t5", "cv-b", 403)])
    assert set(part.state.wins) == {"dpu/cv-b"}
    assert [(a.kind, a.entity, a.state.value, a.reason.value) for a in out.alarms] == [
        ("repeated_winner", "dpu/cv-a", "cleared", "silence")]  # fmt: skip
    assert "repeated_winner/dpu/cv-a" not in part.state.alarms.machines
