"""Procurement files as publishers put them out (issue 9, part 4): SPSE's tender listing and
every shape of OCDS file, each on a real public sample (tests/fixtures/README.md), and one
test per finding: the tender listing detected, a buyer named only by name, a contract-only
release, a bare release, an ISO-8859-1 package, dead-letter details in words."""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors.ocds_replay import OcdsReplaySource, release_events
from connectors.spse_replay import ListingKind, SpseReplaySource, detect_kind, split_rows
from connectors.textfile import decode
from schemas.procurement import TenderKind
from schemas.settings import Settings
from sitroom import procurement_cmd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "procurement"
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
CDMX = "ocdskit_cdmx_release-package-1.json"
DNCP = "direccion-nacional-de-contrataciones-publicas-dncp"


def spse(path: Path, kind: ListingKind | None = None) -> tuple[list, list]:  # type: ignore[type-arg]
    return SpseReplaySource([path], kind=kind).read(path, AS_OF)


def ocds(*paths: Path, encoding: str | None = None) -> tuple[list, list]:  # type: ignore[type-arg]
    source = OcdsReplaySource(list(paths), encoding=encoding)
    for path in paths:
        source.parse(path)  # every file's buyers first, as a replay does
    events, rejects = [], []
    for path in paths:
        e, r = source.read(path)
        events += e
        rejects += r
    return events, rejects


def kinds(events: list) -> list[str]:  # type: ignore[type-arg]
    return [e.kind.value for e in events]


# --- SPSE: the tender listing (/dt/lelang) ------------------------------------------------


def test_a_real_spse4_tender_listing_maps_stage_hps_method_category_and_year() -> None:
    """Kementerian PUPR's /dt/lelang, 2019, 14 columns, a status badge in HTML in a name."""
    events, rejects = spse(FIXTURES / "pyproc_readme_dt_lelang_pu_2019.json")
    assert rejects == [] and len(events) == 2
    first, second = events
    assert first.tender_id == "lelang-48658064" and first.kind is TenderKind.ANNOUNCED
    assert first.title == "Konsultan Manajemen Provinsi Seleksi Ulang"  # no <span> left
    assert (first.agency_id, first.agency_name) == (
        "kementerian-pekerjaan-umum-dan-perumahan-rakyat",
        "Kementerian Pekerjaan Umum dan Perumahan Rakyat",
    )
    assert (first.method, first.category, first.year, first.status) == (
        "Seleksi", "Jasa Konsultansi Badan Usaha", 2019, "Masa Sanggah Hasil Tender")  # fmt: skip
    assert (first.estimate_amount, first.estimate_currency) == (1_700_000_000, "IDR")
    assert second.status == "Pengumuman Prakualifikasi [...]" and "Semarang" in second.title


def test_the_tender_listing_is_detected_and_not_read_as_non_tender(tmp_path: Path) -> None:
    """Finding: pyproc's /dt/lelang capture was taken for a non-tender listing (9 columns)
    and every row refused with "year '' is not a year"."""
    for name in ("pyproc_dt_lelang.json", "pyproc_dt_lelang_data_only.json"):
        renamed = tmp_path / "export.json"  # the name says nothing: the rows must
        shutil.copy(FIXTURES / name, renamed)
        for path in (FIXTURES / name, renamed):
            assert detect_kind(path, split_rows(path.read_text())) is ListingKind.LELANG
            events, rejects = spse(path)
            assert rejects == [] and len(events) == 2, name
            assert [(e.tender_id, e.category, e.year, e.status) for e in events] == [
                ("lelang-10080116000", "Pengadaan Barang", 2025, "Tender Sudah Selesai"),
                ("lelang-10080117000", "Jasa Konsultansi", 2025, "Tender Sedang Berlangsung"),
            ]
            # The HPS is empty in this capture: no estimate rather than a refusal.
            assert all(e.estimate_amount is None is e.estimate_currency for e in events)


def test_other_spse_listings_are_still_told_apart_from_the_tender_listing(tmp_path: Path) -> None:
    for name, kind in (("pyproc_dt_nonspk.json", ListingKind.NONSPK),
                       ("pyproc_dt_darurat_list.json", ListingKind.DARURAT),
                       ("pyproc_dt_swakelola.json", ListingKind.SWAKELOLA),
                       ("pyproc_readme_dt_lelang_pu_2019.json", ListingKind.LELANG)):  # fmt: skip
        copy = tmp_path / "listing.json"
        copy.write_bytes((FIXTURES / name).read_bytes())
        assert detect_kind(copy, split_rows(copy.read_text())) is kind, name


def test_national_spse_rows_and_multi_year_packages(tmp_path: Path) -> None:
    """SPSE 4.5 (spse.inaproc.id) has 16 columns, and a multi-year package names its years
    "TA 2027, 2028, 2026": the package counts in the year it starts."""
    listing = json.loads((FIXTURES / "pyproc_readme_dt_lelang_pu_2019.json").read_text())
    listing["data"][0] += ["0", None]
    listing["data"][1][8] = "Pekerjaan Konstruksi - TA 2027, 2028, 2026"
    path = tmp_path / "dt_lelang_2027.json"
    path.write_text(json.dumps(listing))
    events, rejects = spse(path)
    assert rejects == [] and events[0].year == 2019
    assert (events[1].category, events[1].year) == ("Pekerjaan Konstruksi", 2026)


def test_a_listing_forced_to_the_wrong_layout_is_refused_in_words() -> None:
    events, rejects = spse(FIXTURES / "pyproc_dt_nonspk.json", kind=ListingKind.LELANG)
    assert events == [] and len(rejects) == 25
    assert rejects[0][1] == (
        "column 9 'Paket Sedang Berjalan' is not '<category> - TA <year>' as in a tender listing"
    )


def test_the_command_line_offers_the_tender_layout_and_an_encoding() -> None:
    parser = argparse.ArgumentParser()
    procurement_cmd.add_parsers(parser.add_subparsers(dest="connector"), lambda p: p)
    args = parser.parse_args(["spse-replay", "--file", "x.json", "--kind", "lelang"])
    assert args.kind == "lelang"
    args = parser.parse_args(["ocds-replay", "--file", "x.json", "--encoding", "iso-8859-1"])
    assert args.encoding == "iso-8859-1"
    with pytest.raises(SystemExit):
        parser.parse_args(["ocds-replay", "--file", "x.json", "--encoding", "klingon"])
    listing = str(FIXTURES / "pyproc_dt_lelang.json")
    args = parser.parse_args(["spse-replay", "--file", listing, "--as-of", "2026-03-01T08:00"])
    source = procurement_cmd.source(Settings(), args)  # a naive --as-of is the room's time
    assert isinstance(source, SpseReplaySource) and source.as_of == datetime(
        2026, 3, 1, 1, tzinfo=UTC
    )


# --- OCDS: every shape a publisher puts out ------------------------------------------------


def test_a_record_package_is_read_from_its_compiled_releases() -> None:
    """Paraguay's DNCP, OCDS 1.1: the compiled release, not the link to a planning release."""
    path = FIXTURES / "ocdskit_record-package_1.1.json"
    source = OcdsReplaySource([path])
    found, rejects = source.parse(path)
    assert rejects == [] and [f.where for f in found] == [f"{path}:records[0].compiledRelease"]
    events, _ = source.read(path)
    assert kinds(events) == ["announced", "awarded"]
    announced, award = events
    assert announced.agency_id == "a02fc5eae413fa29686db8eff8b439b6"
    assert announced.agency_name == "Dirección Nacional de Contrataciones Públicas (DNCP)"
    assert (award.winner_id, award.amount, award.currency) == ("80007525-0", 135_630_400, "PYG")


def test_a_record_without_a_compiled_release_is_read_from_its_releases(tmp_path: Path) -> None:
    package = json.loads((FIXTURES / "ocdskit_record-package-1.json").read_text())
    with_compiled, _ = ocds(FIXTURES / "ocdskit_record-package-1.json")
    package["records"][0].pop("compiledRelease")
    path = tmp_path / "records.json"
    path.write_text(json.dumps(package))
    events, rejects = ocds(path)
    assert rejects == [] and kinds(events) == kinds(with_compiled)
    assert {e.event_id for e in events} == {e.event_id for e in with_compiled}
    assert {e.agency_id for e in events} == {"INAH-195"}


def test_a_record_with_only_links_to_its_releases_is_refused_in_words(tmp_path: Path) -> None:
    package = json.loads((FIXTURES / "ocdskit_record-package_1.1.json").read_text())
    package["records"][0].pop("compiledRelease")
    path = tmp_path / "linked.json"
    path.write_text(json.dumps(package))
    events, rejects = ocds(path)
    assert events == []
    assert rejects[0][:3] == (
        "unparseable_record",
        "ocds-03ad3f-193399: the record has no compiled release and only links to its "
        "releases; replay the release packages those links point to",
        f"{path}:records[0]",
    )


def test_a_bare_release_is_read_not_dead_lettered_as_releases() -> None:
    """Finding: a release on its own (here Mexico City's compiled release) was dead-lettered
    with the detail 'releases', the text of a KeyError."""
    path = FIXTURES / "ocdskit_compiled-release-1.json"
    events, rejects = ocds(path)
    assert rejects == []
    assert kinds(events) == ["announced", "bid", "bid", "awarded", "contract"]
    assert {e.tender_id for e in events} == {"OCDS-87SD3T-AD-SF-DRM-063-2015"}


def test_json_lines_of_packages_and_of_releases(tmp_path: Path) -> None:
    split = FIXTURES / "ocdskit_release-package_split.json"  # two packages, one a line
    source = OcdsReplaySource([split])
    found, rejects = source.parse(split)
    assert rejects == [] and [f.where for f in found] == [
        f"{split}:1:releases[0]", f"{split}:1:releases[1]",
        f"{split}:2:releases[0]", f"{split}:2:releases[1]"]  # fmt: skip
    events, _ = source.read(split)
    assert {e.tender_id for e in events} == {"OCDS-87SD3T-AD-SF-DRM-063-2015",
                                             "OCDS-87SD3T-AD-SF-DRM-065-2015"}  # fmt: skip
    # One release a line, and a line cut short in the middle: the others are read.
    lines = [(FIXTURES / f"ocdskit_compiled-release-{i}.json").read_text().strip() for i in (1, 2)]
    jsonl = tmp_path / "releases.jsonl"
    jsonl.write_text(f"{lines[0]}\n{lines[1][:500]}\n{lines[1]}\n")
    events, rejects = ocds(jsonl)
    assert kinds(events) == ["announced", "bid", "bid", "awarded", "contract",
                             "announced", "bid", "awarded", "contract"]  # fmt: skip
    assert [(r[0], r[2]) for r in rejects] == [("unparseable_release", f"{jsonl}:2")]
    assert rejects[0][1].startswith("not JSON: it breaks at line 2, column")


def test_an_array_of_packages_and_a_gzip_file(tmp_path: Path) -> None:
    """Mexico City's API serves its packages as one JSON array (/api/contratos/array)."""
    packages = [json.loads((FIXTURES / f"ocdskit_cdmx_release-package-{i}.json").read_text())
                for i in (1, 2)]  # fmt: skip
    array = tmp_path / "contratos.json"
    array.write_text(json.dumps(packages, ensure_ascii=False))
    one_by_one, _ = ocds(*(FIXTURES / f"ocdskit_cdmx_release-package-{i}.json" for i in (1, 2)))
    events, rejects = ocds(array)
    assert rejects == [] and [e.event_id for e in events] == [e.event_id for e in one_by_one]
    packed = tmp_path / "contratos.json.gz"
    packed.write_bytes(gzip.compress(array.read_bytes()))
    assert [e.event_id for e in ocds(packed)[0]] == [e.event_id for e in one_by_one]


def test_a_buyer_named_only_by_name_keeps_its_release() -> None:
    """Finding: Paraguay's DNCP (OCDS 1.0) names its buyer with no identifier; the release
    was lost."""
    for name in ("ocdskit_release-package_1.0-1.json", "ocdskit_record-package_1.0.json"):
        events, rejects = ocds(FIXTURES / name)
        assert rejects == [] and kinds(events) == ["announced", "awarded"], name
        assert {(e.agency_id, e.agency_name) for e in events} == {
            (DNCP, "Dirección Nacional de Contrataciones Públicas (DNCP)")}  # fmt: skip
        assert events[0].title == "Adquisición de Scanner"
        assert events[1].winner_name == "MASTER SOFT SRL"


def test_the_buyer_may_be_the_party_with_the_buyer_role() -> None:
    record = json.loads((FIXTURES / "ocdskit_record-package-1.json").read_text())["records"][0]
    release = record["compiledRelease"]
    release.pop("buyer")  # the party with the buyer role says it, before the procuring entity
    assert {e.agency_id for e in release_events(release)} == {"INAH-195"}
    for party in release["parties"]:
        party.pop("id", None)  # named only
    assert {e.agency_id for e in release_events(release)} == {
        "instituto-nacional-de-antropologia-e-historia"}  # fmt: skip


def test_a_contract_only_release_is_accepted() -> None:
    """Finding: Paraguay's contract releases (tag "contract", no tender, no buyer) were
    dropped. The buyer is the payer of the contract's transactions (OCDS 1.1 ``payer``,
    1.0 ``providerOrganization``); the contractor the contract's suppliers."""
    for name, agency in (("ocdskit_release-package_1.1-2.json", "b57cc866981fddc03d7928d923463fb1"),
                         ("ocdskit_release-package_1.0-2.json", "PY-PGN-12-8-1000000")):  # fmt: skip
        events, rejects = ocds(FIXTURES / name)
        assert rejects == [] and kinds(events) == ["contract"], name  # no empty "announced"
        contract = events[0]
        assert contract.tender_id == "ocds-03ad3f-246807"
        assert contract.agency_id == agency
        assert contract.agency_name == "1000000-DIRECCION GENERAL DE ADMINISTRACION Y FINANZAS"
        assert (contract.winner_id, contract.winner_name) == (
            "11-de-setiembre-srl", "11 DE SETIEMBRE SRL")  # fmt: skip
        assert (contract.amount, contract.currency, contract.status) == (
            17_875_000,
            "PYG",
            "active",
        )
        assert contract.ts == datetime(2013, 4, 5, 12, tzinfo=UTC)


def test_a_contract_release_takes_the_buyer_its_tender_release_names(tmp_path: Path) -> None:
    """In one replay, whichever file comes first: the worker keeps one agency per tender."""
    contract = FIXTURES / "ocdskit_release-package_1.1-2.json"
    tender = json.loads((FIXTURES / "ocdskit_release-package_1.0-1.json").read_text())
    tender["releases"][0]["ocid"] = "ocds-03ad3f-246807"
    tender_path = tmp_path / "tender.json"
    tender_path.write_text(json.dumps(tender))
    events, rejects = ocds(contract, tender_path)
    assert rejects == [] and {e.agency_id for e in events} == {DNCP}


def test_a_release_naming_no_buyer_at_all_is_kept_under_a_buyer_of_its_own() -> None:
    release = json.loads((FIXTURES / CDMX).read_text())["releases"][0]
    release.pop("buyer")
    release["tender"].pop("procuringEntity")
    # The payer of its contract's transactions (Mexico City's OCDS 1.0 providerOrganization).
    assert {(e.agency_id, e.agency_name) for e in release_events(release)} == {
        ("0901", "SECRETARÍA DE FINANZAS")}  # fmt: skip
    for contract in release["contracts"]:
        contract.pop("implementation")
    events = release_events(release)
    assert {e.agency_id for e in events} == {"unknown-buyer:OCDS-87SD3T-AD-SF-DRM-063-2015"}


def test_an_iso_8859_1_package_is_read() -> None:
    """Finding: Mexico City's package in ISO-8859-1 was unreadable."""
    path = FIXTURES / "ocdskit_release-package_encoding-iso-8859-1.json"
    assert decode(path.read_bytes())[1] == "cp1252"  # its superset: the same text here
    for encoding in (None, "iso-8859-1"):
        events, rejects = ocds(path, encoding=encoding)
        assert rejects == [] and len(events) == 13
        assert events[0].agency_name == "SECRETARÍA DE FINANZAS"
        assert events[0].title == "MANTENIMIENTO A MÁQUINA CORTADORA"
    events, rejects = ocds(path, encoding="utf-8")  # a wrong --encoding says so
    assert events == [] and rejects[0][0] == "unreadable_file"
    assert rejects[0][1].startswith(f"{path.name}: not utf-8 text: byte 0xd3 at offset 592 ")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252", "utf-16"])
def test_other_encodings_of_a_real_package_read_the_same(tmp_path: Path, encoding: str) -> None:
    text = (FIXTURES / CDMX).read_text(encoding="utf-8")
    path = tmp_path / f"package-{encoding}.json"
    path.write_bytes(text.encode(encoding))
    expected, _ = ocds(FIXTURES / CDMX)
    events, rejects = ocds(path)
    assert rejects == [] and [e.model_dump() for e in events] == [e.model_dump() for e in expected]


def test_times_without_an_offset_are_the_rooms_local_time() -> None:
    release = json.loads((FIXTURES / CDMX).read_text())["releases"][0]
    release["tender"]["tenderPeriod"] = {"startDate": "2016-01-07T09:00:00"}
    events = release_events(release, tz=ZoneInfo("Asia/Jakarta"))
    assert events[0].ts == datetime(2016, 1, 7, 2, tzinfo=UTC)


def test_dead_letter_details_are_sentences(tmp_path: Path) -> None:
    """Finding: details were exception text ('releases'). Each refusal says what is wrong."""
    good = json.loads((FIXTURES / "ocdskit_compiled-release-2.json").read_text())
    no_ocid = {k: v for k, v in good.items() if k != "ocid"}
    long_ocid = {**good, "ocid": "ocds-" + "x" * 200}
    path = tmp_path / "mixed.jsonl"
    lines = [good, {"draw": 1, "data": []}, no_ocid, long_ocid, [1, 2], "release"]
    path.write_text("\n".join(json.dumps(v) for v in lines) + "\n{broken\n")
    events, rejects = ocds(path)
    assert len(events) == 4
    details = {r[2].removeprefix(f"{path}:"): (r[0], r[1]) for r in rejects}
    assert details == {
        "2": ("not_ocds", "not OCDS: an object with data, draw, not a release (no ocid) nor "
                          "a package (no releases or records array)"),
        "3": ("not_ocds", "not OCDS: an object with awards, buyer, contracts, date, id, "
                          "initiationType, not a release (no ocid) nor a package (no "
                          "releases or records array)"),
        "4": ("unparseable_release", "ocds-" + "x" * 200 + ": the package id (ocid) is not "
              "usable: string should have at most 128 characters"),
        "5[0]": ("not_ocds", "not OCDS: a number, not a release (no ocid) nor a package (no "
                             "releases or records array)"),
        "5[1]": ("not_ocds", "not OCDS: a number, not a release (no ocid) nor a package (no "
                             "releases or records array)"),
        "6": ("not_ocds", "not OCDS: a string, not a release (no ocid) nor a package (no "
                          "releases or records array)"),
        "7": ("unparseable_release", "not JSON: it breaks at line 7, column 2 (expecting "
                                     "property name enclosed in double quotes)"),
    }  # fmt: skip
    for detail in (r[1] for r in rejects):
        assert "Error" not in detail and "input_value" not in detail
    # A file that is not JSON at all is one refusal that says so.
    broken = tmp_path / "broken.json"
    broken.write_text('{"releases": [\n  {"ocid": "x",}\n]}')
    events, rejects = ocds(broken)
    assert rejects == [("unreadable_file", "broken.json is not JSON: it breaks at line 2, "
                        "column 16 (expecting property name enclosed in double quotes)",
                        str(broken), broken.read_bytes())]  # fmt: skip
    archive = tmp_path / "export.zip"
    archive.write_bytes(b"PK\x03\x04rest")
    assert ocds(archive)[1][0][1] == (
        "export.zip: a ZIP archive (or an .xlsx workbook): extract the file first"
    )


def test_a_replay_that_found_nothing_says_what_the_files_held(tmp_path: Path) -> None:
    package = json.loads((FIXTURES / "ocdskit_record-package_1.1.json").read_text())
    package["records"][0].pop("compiledRelease")
    path = tmp_path / "linked.json"
    path.write_text(json.dumps(package))
    source = OcdsReplaySource([path])
    source.read(path)
    assert source.emptiness() == "the files held no OCDS release (refused: unparseable_record 1)"
    listing = tmp_path / "dt_lelang.json"
    listing.write_text('{"draw": 1, "data": []}')
    spse_source = SpseReplaySource([listing])
    spse_source.read(listing, AS_OF)
    assert spse_source.emptiness() == "the files held no listing rows"
