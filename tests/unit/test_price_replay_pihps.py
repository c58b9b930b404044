"""price-replay on PIHPS (Bank Indonesia's Pusat Informasi Harga Pangan Strategis) tables as
they come: real exports (.xlsx, wide and transposed CSV, long CSV, JSON), grades kept
apart, unknown names summed up, Indonesian numbers, "-" for missing, today's table."""

import csv
import gzip
import json
import logging
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import orjson
import pytest

from connectors.base import SourceError
from connectors.price_replay import PriceReplay, parse_day, parse_price
from schemas.alarm_rules import load_rules
from schemas.deadletter import Reason
from schemas.prices import CommodityRegistry, PriceObservation, load_commodities, load_markets
from schemas.settings import Settings
from schemas.spatial import gazetteer
from streams.pipeline import Emitted, Message
from streams.prices_logic import PricesPartition
from streams.validation import future_problem

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "food-prices"
NASIONAL_XLSX = FIXTURES / "pihps_nasional_2026-01_2026-04.xlsx"
BANTEN_XLSX = FIXTURES / "pihps_banten_2020-2024.xlsx"
BANTEN_CSV = FIXTURES / "pihps_banten_2020-2024_transposed.csv"
BERAS_CSV = FIXTURES / "pihps_beras_super_2024_transposed.csv"
NASIONAL_LONG = FIXTURES / "pihps_nasional_long_2022-2026.csv.gz"
BANDUNG = FIXTURES / "bapanas_harga_konsumen_kota_bandung.csv"
WIB = ZoneInfo("Asia/Jakarta")
# The 21 grades PIHPS publishes, each its own series.
PIHPS_GRADES = {
    "Beras Kualitas Bawah I": "beras-bawah-1", "Beras Kualitas Bawah II": "beras-bawah-2",
    "Beras Kualitas Medium I": "beras-medium-1", "Beras Kualitas Medium II": "beras-medium-2",
    "Beras Kualitas Super I": "beras-super-1", "Beras Kualitas Super II": "beras-super-2",
    "Daging Ayam Ras Segar": "daging-ayam", "Daging Sapi Kualitas 1": "daging-sapi-1",
    "Daging Sapi Kualitas 2": "daging-sapi-2", "Telur Ayam Ras Segar": "telur-ayam",
    "Bawang Merah Ukuran Sedang": "bawang-merah", "Bawang Putih Ukuran Sedang": "bawang-putih",
    "Cabai Merah Besar": "cabai-merah-besar", "Cabai Merah Keriting ": "cabai-merah-keriting",
    "Cabai Rawit Hijau": "cabai-rawit-hijau", "Cabai Rawit Merah": "cabai-rawit-merah",
    "Minyak Goreng Curah": "minyak-goreng-curah",
    "Minyak Goreng Kemasan Bermerk 1": "minyak-goreng-kemasan-1",
    "Minyak Goreng Kemasan Bermerk 2": "minyak-goreng-kemasan-2",
    "Gula Pasir Kualitas Premium": "gula-pasir-premium", "Gula Pasir Lokal": "gula-pasir-lokal",
}  # fmt: skip
PIHPS_GROUPS = ["Beras", "Daging Ayam", "Daging Sapi", "Telur Ayam", "Bawang Merah",
                "Bawang Putih", "Cabai Merah", "Cabai Rawit", "Minyak Goreng", "Gula Pasir"]  # fmt: skip


class Publisher:
    def __init__(self) -> None:
        self.dead: list[tuple[str, str, str, bytes]] = []  # (reason, detail, source, raw)
        self.skipped: Counter[str] = Counter()

    async def dead_letter(self, raw: bytes, reason: str, detail: str, source: str) -> None:
        self.dead.append((reason, detail, source, raw))

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] += n


async def replay(*paths: Path, zone: Any = None, commodities: CommodityRegistry | None = None) -> tuple[PriceReplay, list[PriceObservation], Publisher]:  # fmt: skip
    source = PriceReplay(list(paths), "kota-bandung", commodities or load_commodities(), source="pihps", zone=zone)  # fmt: skip
    publisher, events = Publisher(), []
    async for batch in source.batches(publisher):  # type: ignore[arg-type]
        events += batch
    return source, events, publisher  # type: ignore[return-value]


def prices(events: list[PriceObservation]) -> dict[tuple[str, date], float]:
    out = {(e.commodity_id, e.date): e.price_idr for e in events}
    assert len(out) == len(events), "one price per commodity and day"
    return out


def sheet_rows(path: Path) -> list[list[Any]]:
    return [list(r) for r in openpyxl.load_workbook(path).active.iter_rows(values_only=True)]


def day_of(header: str) -> date:
    d, m, y = (int(p) for p in header.replace(" ", "").split("/"))
    return date(y, m, d)


def number(text: Any) -> float | None:
    """The fixture's own notation, read independently: "15,750", 15750 or "-"."""
    if text in (None, "", "-"):
        return None
    return float(str(text).replace(",", ""))


# -- each shape on a real sample -------------------------------------------------------------


async def test_the_real_pihps_xlsx_export_keeps_all_21_grades_apart() -> None:
    source, events, publisher = await replay(NASIONAL_XLSX)
    rows = sheet_rows(NASIONAL_XLSX)
    header, body = rows[0], [r for r in rows[1:] if r[1]]
    assert header[:2] == ["No", "Komoditas (Rp)"] and len(body) == 31
    days = [day_of(h) for h in header[2:]]
    expected = {(PIHPS_GRADES[r[1]], day): number(v)
                for r in body if not r[0].isalpha() for day, v in zip(days, r[2:], strict=True)}  # fmt: skip
    assert publisher.dead == []
    assert prices(events) == expected
    assert {e.commodity_id for e in events} == set(PIHPS_GRADES.values())  # 21 distinct series
    # The collapse, on the real first day: Medium I and II, Super I and II, the two
    # beef qualities are five series with their own prices.
    first = {e.commodity_id: e.price_idr for e in events if e.date == date(2026, 1, 1)}
    assert (first["beras-medium-1"], first["beras-medium-2"]) == (15900, 15800)
    assert (first["beras-super-1"], first["beras-super-2"]) == (17100, 16650)
    assert (first["daging-sapi-1"], first["daging-sapi-2"]) == (142500, 134600)
    # The ten group rows (Beras, numbered I, ...) average their grades: skipped, counted.
    assert set(source.stats.groups) == set(PIHPS_GROUPS)
    assert publisher.skipped["group_average"] == 10 * len(days)
    # A day at a time, as a live feed sends them; stamped at the start of the market day.
    assert [e.date for e in events] == sorted(e.date for e in events)
    assert events[0].observed_at == datetime(2026, 1, 1, tzinfo=WIB)
    assert {e.grade for e in events if e.commodity_id.startswith("beras-")} == {
        "bawah-1", "bawah-2", "medium-1", "medium-2", "super-1", "super-2"}  # fmt: skip


async def test_a_real_xlsx_with_dashes_and_numbers_and_the_csv_made_from_it_agree() -> None:
    """Banten 2020-2024: some cells are text ("11,700"), some numbers, "-" on holidays; the
    same table turned round and saved as CSV (empty where the workbook has "-")."""
    _, from_xlsx, pub_xlsx = await replay(BANTEN_XLSX)
    _, from_csv, pub_csv = await replay(BANTEN_CSV)
    rows = sheet_rows(BANTEN_XLSX)
    graded = [r for r in rows[1:] if r[0] and not str(r[0]).isalpha()]
    cells = [v for r in graded for v in r[2:]]
    dashes = sum(1 for v in cells if v in ("-", None, ""))
    assert {type(v) for v in cells} == {str, int}  # text and numbers mixed, as found
    assert pub_xlsx.dead == pub_csv.dead == []
    assert pub_xlsx.skipped["missing_price"] == pub_csv.skipped["missing_price"] == dashes > 0
    assert len(from_xlsx) == len(cells) - dashes
    assert prices(from_xlsx) == prices(from_csv)
    assert prices(from_xlsx)[("beras-medium-1", date(2020, 1, 2))] == 12150


async def test_a_real_transposed_csv_with_pihps_numbers() -> None:
    """A CSV made from PIHPS' export: a row per day ("05/ 02/ 2024"), a column per
    commodity, prices quoted as PIHPS writes them ("16,350")."""
    source, events, publisher = await replay(BERAS_CSV)
    rows = list(csv.reader(BERAS_CSV.open()))
    assert rows[0] == ["Tanggal", "Beras", "Beras Kualitas Super I"]
    assert publisher.dead == []
    assert prices(events) == {("beras-super-1", day_of(r[0])): number(r[2]) for r in rows[1:]}
    assert source.stats.groups == Counter({"Beras": len(rows) - 1})


async def test_a_wide_csv_saved_from_the_export_with_titles_and_indonesian_numbers(tmp_path: Path) -> None:  # fmt: skip
    """The real workbook saved as CSV by an Indonesian spreadsheet: semicolons, "15.750",
    title rows above the table, a blank line and a note under it."""
    rows = sheet_rows(NASIONAL_XLSX)
    path = tmp_path / "Tabel Harga Berdasarkan Daerah.csv"
    with path.open("w", newline="", encoding="cp1252") as f:
        out = csv.writer(f, delimiter=";")
        out.writerows([["Tabel Harga Berdasarkan Daerah"], ["Provinsi: Semua Provinsi"],
                       ["Periode: 01/01/2026 \u2013 30/04/2026"], []])  # fmt: skip
        for r in rows:
            if any(c is not None for c in r):
                out.writerow([str(c).replace(",", ".") if c is not None else "" for c in r])
        out.writerows([[], ["Sumber: PIHPS Nasional"]])
    _, events, publisher = await replay(path)
    _, from_xlsx, _ = await replay(NASIONAL_XLSX)
    assert publisher.dead == []
    assert prices(events) == prices(from_xlsx)


async def test_the_real_long_pihps_csv_keeps_grades_apart() -> None:
    """PIHPS' export reshaped to one price per line (Komoditas, tanggal, harga), gzip."""
    source, events, publisher = await replay(NASIONAL_LONG)
    rows = list(csv.DictReader(gzip.open(NASIONAL_LONG, "rt")))
    assert publisher.dead == [] and source.stats.missing == 0
    assert prices(events) == {
        (PIHPS_GRADES.get(r["Komoditas"], PIHPS_GRADES.get(r["Komoditas"] + " ")),
         date.fromisoformat(r["tanggal"])): float(r["harga"]) for r in rows}  # fmt: skip
    per_id = Counter(e.commodity_id for e in events)
    assert set(per_id) == set(PIHPS_GRADES.values()) and len(set(per_id.values())) == 1
    day = {e.commodity_id: e.price_idr for e in events if e.date == date(2022, 1, 3)}
    assert day["beras-medium-1"] != day["beras-medium-2"]


async def test_json_pihps_grid_and_long_rows_from_real_tables(tmp_path: Path) -> None:
    """No PIHPS JSON is published as a file; its grid endpoint (GetGridData...) answers
    {"data": [{"no", "name", "level", "DD/MM/YYYY": "15,750"}]}: the real workbook in that
    shape reads the same. Bapanas' real rows as a JSON array read as the CSV does."""
    rows = sheet_rows(NASIONAL_XLSX)
    header = rows[0]
    grid = [{"no": r[0], "name": r[1], "level": 1 if r[0].isalpha() else 2,
             **{h.replace(" ", ""): v for h, v in zip(header[2:], r[2:], strict=True)}}
            for r in rows[1:] if r[1]]  # fmt: skip
    grid_path = tmp_path / "GetGridDataDaerah.json"
    grid_path.write_text(json.dumps({"data": grid}))
    _, from_grid, pub_grid = await replay(grid_path)
    _, from_xlsx, _ = await replay(NASIONAL_XLSX)
    assert pub_grid.dead == [] and prices(from_grid) == prices(from_xlsx)

    long_path = tmp_path / "bandung.json"
    long_path.write_text(json.dumps(list(csv.DictReader(BANDUNG.open()))))
    _, from_json, pub_json = await replay(long_path)
    _, from_csv, _ = await replay(BANDUNG)
    assert pub_json.dead == [] and prices(from_json) == prices(from_csv)


# -- one test per finding --------------------------------------------------------------------


async def test_grades_do_not_collapse(tmp_path: Path) -> None:
    """The issue's long CSV: Medium I (13,650) and Medium II (12,950) were one beras-medium
    (last row won), and so were Super I/II and "Daging Sapi" / "Daging Sapi Kualitas 1"."""
    path = tmp_path / "pihps_long.csv"
    path.write_text(
        "Timestamp,Komoditas,Satuan,Harga\n"
        "2026-01-05,Beras,Rp/kg,14000\n"
        "2026-01-05,Beras Kualitas Medium I,Rp/kg,13650\n"
        "2026-01-05,Beras Kualitas Medium II,Rp/kg,12950\n"
        "2026-01-05,Beras Kualitas Super I,Rp/kg,15100\n"
        "2026-01-05,Beras Kualitas Super II,Rp/kg,14700\n"
        "2026-01-05,Daging Sapi,Rp/kg,138000\n"
        "2026-01-05,Daging Sapi Kualitas 1,Rp/kg,142500\n"
    )
    source, events, publisher = await replay(path)
    assert publisher.dead == []
    assert {e.commodity_id: e.price_idr for e in events} == {
        "beras-medium-1": 13650, "beras-medium-2": 12950, "beras-super-1": 15100,
        "beras-super-2": 14700, "daging-sapi-1": 142500}  # fmt: skip
    # the group averages are not prices of a grade: skipped and said so
    assert publisher.skipped["group_average"] == 2
    assert set(source.stats.groups) == {"Beras", "Daging Sapi"}


def test_every_pihps_name_is_its_own_commodity_and_the_registry_refuses_a_shared_name() -> None:  # fmt: skip
    commodities = load_commodities()
    ids = [commodities.resolve(name).id for name in PIHPS_GRADES]  # type: ignore[union-attr]
    assert ids == list(PIHPS_GRADES.values()) and len(set(ids)) == 21
    assert all(commodities.resolve(g) is None or g in ("Bawang Merah", "Bawang Putih")
               for g in PIHPS_GROUPS)  # fmt: skip
    # The old ids the simulator, the HET table and Bapanas' tables use are still there.
    assert {"beras-premium", "beras-medium", "daging-sapi", "gula", "minyak-goreng-kemasan"} <= set(commodities.by_id())  # fmt: skip
    ceilings = load_rules().prices.ceilings
    assert ceilings["beras-medium-1"].price_idr == ceilings["beras-medium"].price_idr
    assert ceilings["beras-super-2"].price_idr == ceilings["beras-premium"].price_idr
    raw = commodities.model_dump(by_alias=True)
    raw["commodity"][1]["aliases"] = ["Beras Kualitas Medium I"]  # as beras-medium had it
    with pytest.raises(ValueError, match="stands for both"):
        CommodityRegistry.model_validate(raw)


async def test_two_prices_for_one_grade_and_day_are_not_merged_silently(tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text("No,Komoditas (Rp),05/ 01/ 2026\n1,Beras Kualitas Medium I,\"13,650\"\n"
                    "2,Beras Kualitas Medium I,\"13,650\"\n3,beras kualitas medium i,\"12,950\"\n")  # fmt: skip
    source, events, publisher = await replay(path)
    assert [(e.commodity_id, e.price_idr) for e in events] == [("beras-medium-1", 13650)]
    assert source.stats.duplicates == 1  # the same price again is no news
    [(reason, detail, where, _)] = publisher.dead
    assert reason == "conflicting_price" and where.startswith(f"{path}:4")
    assert "12,950" in detail and "13,650" in detail and "the first is kept" in detail


async def test_unknown_names_are_dead_lettered_and_summed_up_in_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    path = tmp_path / "unknown.csv"
    path.write_text(
        "No,Komoditas (Rp),05/ 01/ 2026,06/ 01/ 2026\n"
        'I,Beras,"14,000","14,000"\n'
        '1,Beras Kualitas Medium I,"13,650","13,700"\n'
        '2,Beras Organik,"19,000","19,000"\n'
        'II,Kedelai,"11,000",-\n'
        '1,Kedelai Biji Kering Lokal,"11,000",-\n'
    )
    other = tmp_path / "unknown_long.csv"
    other.write_text("Tanggal,Komoditas,Harga\n2026-01-05,Beras Organik,19000\n2026-01-05,Durian,50000\n")  # fmt: skip
    with caplog.at_level(logging.INFO):
        source, events, publisher = await replay(path, other)
    assert [e.commodity_id for e in events] == ["beras-medium-1", "beras-medium-1"]
    assert [(reason, where) for reason, _, where, _ in publisher.dead] == [
        ("unknown_commodity", f"{path}:4"), ("unknown_commodity", f"{path}:5"),
        ("unknown_commodity", f"{path}:6"), ("unknown_commodity", f"{other}:2"),
        ("unknown_commodity", f"{other}:3")]  # fmt: skip
    assert publisher.dead[0][1] == f"{path}:4: 'Beras Organik' is not in the commodity list (schemas/commodities.toml)"  # fmt: skip
    assert publisher.dead[0][3] == b'2,Beras Organik,"19,000","19,000"'  # the row, as read
    assert source.stats.unknown == Counter({"Beras Organik": 2, "Kedelai": 1, "Kedelai Biji Kering Lokal": 1, "Durian": 1})  # fmt: skip
    [line] = [r.getMessage() for r in caplog.records if "not in schemas/commodities.toml" in r.getMessage()]  # fmt: skip
    assert line == ("price-replay: 5 records name commodities not in schemas/commodities.toml, "
                    "dead-lettered as unknown_commodity: 'Beras Organik' 2, 'Kedelai' 1, "
                    "'Kedelai Biji Kering Lokal' 1, 'Durian' 1")  # fmt: skip


async def test_pihps_table_by_region_is_named_for_what_it_is(tmp_path: Path) -> None:
    """PIHPS' other export (one commodity, a row per region) has no commodity names."""
    path = tmp_path / "Tabel Harga Berdasarkan Komoditas.csv"
    path.write_text("No,Komoditas (Rp),03/ 01/ 2022\nI,Semua Provinsi,\"11,750\"\nII,Aceh,\"10,250\"\n"
                    "III,Jawa Tengah,\"10,950\"\nIV,Kota Semarang,\"11,000\"\n")  # fmt: skip
    source, events, _ = await replay(path)
    assert events == [] and "table by commodity, one row per region" in source.emptiness()


@pytest.mark.parametrize(("text", "value"), [
    ("13650", 13650), ("13,650", 13650), ("13.650", 13650), ("13.650,00", 13650),
    ("13,650.00", 13650), ("Rp 13.650,-", 13650), ("Rp13.650", 13650), ("1.250.000", 1250000),
    ("1,250,000", 1250000), ("13650,5", 13650.5), ("13650.00", 13650), ("13 650", 13650),
    (" 16,350 ", 16350), (13650, 13650), (13650.0, 13650), ("-", None), ("", None),
    (None, None), ("0", None), (0, None), ("0,00", None), ("\u2014", None),
])  # fmt: skip
def test_indonesian_and_pihps_number_formats(text: Any, value: float | None) -> None:
    assert parse_price(text) == value


@pytest.mark.parametrize("text", ["abc", "1.2.3", "13,65,0", "13.650,", "1.23.456", "12-000"])
def test_what_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError):
        parse_price(text)


async def test_number_formats_in_a_table(tmp_path: Path) -> None:
    path = tmp_path / "formats.csv"
    path.write_text(
        "Tanggal;Komoditas;Harga\n"
        "05/01/2026;Cabai Rawit Merah;54.350\n"
        "06/01/2026;Cabai Rawit Merah;54.350,00\n"
        "07/01/2026;Cabai Rawit Merah;Rp 55.000,-\n"
        "08/01/2026;Cabai Rawit Merah;lima puluh ribu\n"
    )
    _, events, publisher = await replay(path)
    assert [(str(e.date), e.price_idr) for e in events] == [
        ("2026-01-05", 54350), ("2026-01-06", 54350), ("2026-01-07", 55000)]  # fmt: skip
    [(reason, detail, _, _)] = publisher.dead
    assert (reason, detail) == ("unparseable_row", f"{path}:5: the price 'lima puluh ribu' is not a number")  # fmt: skip


async def test_a_dash_is_missing_not_free_nor_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dash.csv"
    path.write_text("No,Komoditas (Rp),01/ 01/ 2026,02/ 01/ 2026,05/ 01/ 2026\n"
                    "1,Cabai Rawit Hijau,-,\"61,600\",\n")  # fmt: skip
    source, events, publisher = await replay(path)
    assert [(str(e.date), e.price_idr) for e in events] == [("2026-01-02", 61600)]
    assert publisher.dead == [] and publisher.skipped["missing_price"] == 2
    assert source.stats.missing == 2


def test_day_formats() -> None:
    assert parse_day("01/ 02/ 2026") == date(2026, 2, 1)  # PIHPS: day first
    assert parse_day("1/2/2026", mdy=True) == date(2026, 1, 2)
    assert parse_day("2026-02-01T00:00:00") == date(2026, 2, 1)
    assert parse_day("1 Februari 2026") == parse_day("01-Feb-2026") == date(2026, 2, 1)
    assert parse_day(datetime(2026, 2, 1, 0, 0)) == date(2026, 2, 1)
    assert parse_day("31/02/2026") is None and parse_day("Rata-rata") is None


async def test_a_us_spreadsheet_month_first_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "us.csv"
    path.write_text('Komoditas,1/12/2026,1/13/2026\nTelur Ayam Ras Segar,"30,350","30,400"\n')
    _, events, _ = await replay(path)
    assert [e.date for e in events] == [date(2026, 1, 12), date(2026, 1, 13)]


async def test_todays_table_replayed_before_noon_is_not_in_the_future(tmp_path: Path) -> None:
    """Rows were stamped at 12:00 WIB: replaying today's table at 09:00 dead-lettered
    today's rows as future. They are stamped at the start of the market day now."""
    now = datetime.now(WIB).replace(hour=9, minute=0, second=0, microsecond=0)
    today = now.date()
    path = tmp_path / "today.csv"
    path.write_text("Timestamp,Komoditas,Satuan,Harga\n"
                    f"{today - timedelta(days=1)},Beras Medium,Rp./Kg,13250\n"
                    f"{today},Beras Medium,Rp./Kg,13300\n")  # fmt: skip
    _, events, _ = await replay(path)
    assert [e.observed_at for e in events] == [
        datetime.combine(today - timedelta(days=1), time(0), WIB),
        datetime.combine(today, time(0), WIB)]  # fmt: skip
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    part = PricesPartition(settings, load_rules(), load_markets(), load_commodities(), gazetteer())  # fmt: skip
    message = Message("prices.observations", 0, 0, None,
                      orjson.dumps([e.model_dump(mode="json") for e in events]))  # fmt: skip
    _, rejected = part.handle(message, now.astimezone(UTC), Emitted())
    assert rejected == []
    # what the midday stamp met at 09:00
    midday = datetime.combine(today, time(12), WIB)
    assert future_problem(midday, now, settings.max_future_s) is not None
    assert not [r for r in rejected if r.reason == Reason.FUTURE_TIMESTAMP]


async def test_the_market_day_is_in_the_rooms_time_zone(tmp_path: Path) -> None:
    path = tmp_path / "makassar.csv"
    path.write_text("Timestamp,Komoditas,Satuan,Harga\n2026-01-05,Beras Medium,Rp./Kg,13250\n")
    _, [event], _ = await replay(path, zone=ZoneInfo("Asia/Makassar"))
    assert event.observed_at == datetime(2026, 1, 4, 16, 0, tzinfo=UTC)  # 00:00 WITA


async def test_files_that_are_not_price_tables_say_what_they_are(tmp_path: Path) -> None:
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    html = tmp_path / "export.xls"
    html.write_text("<html><body><table><tr><td>Beras</td></tr></table></body></html>")
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    for path, words in ((xls, "Excel 97-2003"), (html, "HTML"), (other, "no price table found"),
                        (broken, "not a workbook")):  # fmt: skip
        with pytest.raises(SourceError, match=words):
            await replay(path)
