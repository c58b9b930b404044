from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.ocds_replay import OcdsReplaySource
from connectors.procurement_simulator import ProcurementSimulator
from connectors.spse_replay import ListingKind, SpseReplaySource, detect_kind, split_rows
from schemas.procurement import TenderKind

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "procurement"
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def spse(name: str, kind: ListingKind | None = None) -> tuple[list, list]:  # type: ignore[type-arg]
    path = FIXTURES / name
    return SpseReplaySource([path], kind=kind).read(path, AS_OF)


def test_real_spse_listings_map_by_their_column_layout() -> None:
    events, rejects = spse("pyproc_dt_nonspk.json")
    assert rejects == [] and len(events) == 25
    first = events[0]
    assert (first.tender_id, first.agency_id, first.method, first.category, first.year) == (
        "nonspk-10942236000", "kementerian-imigrasi-dan-pemasyarakatan", "Pengadaan Langsung",
        "Jasa Lainnya", 2026)  # fmt: skip
    assert first.estimate_amount == 3_800_000 and first.estimate_currency == "IDR"
    assert first.ts == AS_OF and first.status == "Paket Sedang Berjalan"
    darurat, _ = spse("pyproc_dt_darurat_list.json")
    assert (darurat[0].method, darurat[0].estimate_amount, darurat[0].category) == (
        "Darurat", 500_000_000, "Pekerjaan Konstruksi")  # fmt: skip
    swakelola, _ = spse("pyproc_dt_swakelola.json")
    assert len(swakelola) == 25 and swakelola[0].method == "Swakelola"
    assert swakelola[0].year == 2026 and swakelola[0].category is None
    assert sum(e.estimate_amount or 0 for e in swakelola[:2]) == pytest.approx(183_700_000)


def test_kind_is_detected_from_the_rows_when_the_name_says_nothing(tmp_path: Path) -> None:
    for name, kind in (("pyproc_dt_darurat_list.json", ListingKind.DARURAT),
                       ("pyproc_dt_swakelola.json", ListingKind.SWAKELOLA),
                       ("pyproc_dt_nonspk.json", ListingKind.NONSPK)):  # fmt: skip
        copy = tmp_path / "listing.json"
        copy.write_bytes((FIXTURES / name).read_bytes())
        assert detect_kind(copy, split_rows(copy.read_text())) is kind


def corrupt_listing(tmp_path: Path) -> Path:
    """The real nonspk listing with three bad rows: an unreadable amount, a short row and
    a row that breaks the JSON."""
    lines = (FIXTURES / "pyproc_dt_nonspk.json").read_text().splitlines(keepends=True)
    bad_amount = lines.index('            "3,8 Jt",\n')
    lines[bad_amount] = '            "tiga juta",\n'
    short = lines.index('            "10942215000",\n')
    lines[short + 1 : short + 9] = ['            "nama"\n']  # row 2: two columns
    broken = lines.index('            "10942201000",\n')
    lines[broken] = '            "10942201000" "oops",\n'
    path = tmp_path / "pyproc_dt_nonspk_corrupt.json"
    path.write_text("".join(lines))
    return path


def test_bad_rows_are_rejected_with_file_and_line_and_the_rest_imported(tmp_path: Path) -> None:
    path = corrupt_listing(tmp_path)
    events, rejects = SpseReplaySource([path]).read(path, AS_OF)
    assert len(events) == 22
    where = [r[2] for r in rejects]
    assert where == [f"{path}:6 (data[0])", f"{path}:17 (data[1])", f"{path}:21 (data[2])"]
    assert "not an SPSE amount" in rejects[0][1] and "2 columns" in rejects[1][1]
    assert rejects[2][1] == "not JSON" and b'"oops"' in rejects[2][3]
    assert {r[0] for r in rejects} == {"unparseable_row"}


def test_an_unreadable_file_is_one_reject(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"draw": 1}')
    events, rejects = SpseReplaySource([path], kind=ListingKind.NONSPK).read(path, AS_OF)
    assert events == [] and rejects[0][0] == "unreadable_file"


def test_ocds_releases_become_lifecycle_events_with_stable_ids() -> None:
    path = FIXTURES / "ocdskit_cdmx_release-package-2.json"
    events, rejects = OcdsReplaySource([path]).read(path)
    assert rejects == []
    kinds = [e.kind.value for e in events]
    assert kinds == ["announced", "bid", "awarded", "contract"] * 2
    first, second = events[:4], events[4:]
    assert [e.event_id for e in first] == [e.event_id for e in second]  # releases replace
    announced = first[0]
    assert (announced.agency_id, announced.method, announced.bidders) == (
        "GDF9712054NA",
        "selective",
        1,
    )
    assert (announced.estimate_amount, announced.estimate_currency) == (1471566.72, "MXN")
    assert (announced.tender_end - announced.tender_start).days == 3  # type: ignore[operator]
    award_1, award_2 = first[2], second[2]
    assert (award_1.amount, award_1.currency, award_1.exchange_rate) == (75464.96, "USD", None)
    assert award_2.exchange_rate == 17.7526 and award_2.winner_id == "BSM971107ME6"


def test_simulator_is_deterministic_and_injects_red_flags() -> None:
    def run(seed: int) -> tuple[list, dict]:  # type: ignore[type-arg]
        sim = ProcurementSimulator(seed=seed, start=1_780_000_000, duration_s=3600, realtime=False)
        events = [e for t in range(120) for e in sim.events_at(sim.start + t * 30)]
        return events, sim.injected

    events, injected = run(3)
    again, _ = run(3)
    assert [e.model_dump() for e in events] == [e.model_dump() for e in again]
    flags = {f for fs in injected.values() for f in fs}
    assert {"tender_single_bidder", "award_near_hps", "tender_period_short"} <= flags
    methods = {e.method for e in events if e.method}
    assert methods == {"Tender", "Pengadaan Langsung", "Penunjukan Langsung", "E-Purchasing"}
    assert all(e.ts.timestamp() <= 1_780_000_000 + 120 * 30 for e in events)


def test_the_simulator_backfills_past_packages_once() -> None:
    t0 = 1_780_000_000.0
    sim = ProcurementSimulator(seed=3, start=t0, realtime=False, backfill=20)
    first = sim.events_at(t0)
    contracts = [e for e in first if e.kind is TenderKind.CONTRACT]
    assert len(contracts) >= 20
    assert min(e.ts.timestamp() for e in contracts) < t0 - 50 * 86400  # spread over 60 days
    assert len([e for e in sim.events_at(t0 + 30) if e.kind is TenderKind.CONTRACT]) <= 1
