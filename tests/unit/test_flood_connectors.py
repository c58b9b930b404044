"""Flood history replays: PetaBencana report archives and gauge tables, on real samples."""

import csv
import json
import logging
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from openpyxl import Workbook
from pydantic import BaseModel

from connectors.base import Source, SourceError
from connectors.flood_report_import import FloodReportImport
from connectors.gauge_replay import GaugeReplay, MapError, load_map
from schemas.alarm_rules import load_rules
from schemas.catalog import FLOOD_REPORTS, GAUGE_READINGS
from schemas.flood import FloodReport, GaugeReading, load_stations
from schemas.settings import Settings
from schemas.spatial import gazetteer
from sitroom.cli import build_parser
from sitroom.flood_cmd import source as flood_source
from sitroom.runtime import ConfigError
from streams.flood_logic import FloodProcessor
from streams.pipeline import Emitted, Message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flood"
ARCHIVE = FIXTURES / "petabencana_jbd_reports_2017-02-20.geojson"
PINTU_AIR = FIXTURES / "pintu_air_jakarta_2021-10-16_hourly.csv"
PINTU_AIR_THRESHOLDS = FIXTURES / "pintu_air_jakarta_thresholds.csv"
USGS = FIXTURES / "usgs_waterservices_iv.json"
WIB = ZoneInfo("Asia/Jakarta")
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


class FakePublisher:
    def __init__(self) -> None:
        self.dead: list[tuple[bytes, str, str, str]] = []
        self.skipped: Counter[str] = Counter()

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    async def dead_letter(self, raw: bytes, reason: str, detail: str, source: str) -> None:
        self.dead.append((raw, reason, detail, source))


async def run(source: Source) -> tuple[list[Any], FakePublisher]:
    publisher, events = FakePublisher(), []
    async for batch in source.batches(publisher):  # type: ignore[arg-type]
        events += batch
    return events, publisher


def stations_map(spec: str) -> Any:
    return load_map(spec, load_stations())


# --- PetaBencana reports --------------------------------------------------------------


async def test_a_real_petabencana_day_is_read_whole_and_most_reports_have_no_depth() -> None:
    events, publisher = await run(FloodReportImport([ARCHIVE], WIB))
    features = json.loads(ARCHIVE.read_text())["features"]
    assert publisher.dead == [] and not publisher.skipped
    assert len(events) == len(features) == 69
    with_depth = [e for e in events if e.depth_cm is not None]
    assert len(with_depth) == 7  # about 90% of this real day gave no depth
    first = events[0]
    # "2017-02-20T07:58:22.262" has no offset: the archive is in UTC+7, read in WIB.
    assert first.timestamp == datetime(2017, 2, 20, 0, 58, 22, 262000, tzinfo=UTC)
    assert (first.lon, first.lat, first.depth_cm) == (106.940639019012, -6.27121280836829, 77.0)
    assert first.source == "petabencana:grasp" and first.photo_url is None
    assert first.note == "Banjir di area belakang, didepan komplek udah 2 meter"
    qlue = events[1]
    assert qlue.depth_cm is None and qlue.source == "petabencana:qlue"
    assert qlue.photo_url is not None and qlue.photo_url.startswith(
        "https://lh3.googleusercontent.com/"
    )
    # The archive has no pkey: ids come from each report's own facts, stable across replays.
    again, _ = await run(FloodReportImport([ARCHIVE], WIB))
    assert [e.report_id for e in again] == [e.report_id for e in events]
    assert len({e.report_id for e in events}) == 69
    assert all(e.report_id.startswith("petabencana-") for e in events)
    assert FloodReportImport.topic is FLOOD_REPORTS  # where the API's reports go
    assert FloodReportImport([ARCHIVE], WIB).key(first) == first.report_id  # keyed as they are


async def test_naive_times_are_read_in_the_configured_zone() -> None:
    events, _ = await run(FloodReportImport([ARCHIVE], ZoneInfo("Asia/Makassar")))
    assert events[0].timestamp == datetime(2017, 2, 19, 23, 58, 22, 262000, tzinfo=UTC)


# The API's answer as PetaBencana documents it (petabencana/petabencana-docs,
# routes/crowdsourced-reports.md, GPL-3.0): a TopoJSON Topology with quantized points.
API_TOPOLOGY = {
    "statusCode": 200,
    "result": {
        "type": "Topology",
        "objects": {"output": {"type": "GeometryCollection", "geometries": [{
            "type": "Point",
            "properties": {
                "pkey": "5519", "created_at": "2016-12-09T21:37:00.000Z", "source": "qlue",
                "status": "confirmed", "url": None,
                "image_url": "https://lh3.googleusercontent.com/ByClSrW6QhFkBxUhZo0rFt6eiVdvnEHisSzsgjaC9KxdGAQ6CYksTZRA1rcNP9cBGZiv6s4Vp5D8NzkAjPyrBs6c6R4h=s480-c",
                "disaster_type": "flood", "report_data": None,
                "tags": {"instance_region_code": "ID-JK", "local_area_id": "350"}, "title": " ",
                "text": "Perlu penataan dan dirapihkan @ahokbtp semoga bisa lbh baik, bersih dan teratur",
            },
            "coordinates": [0, 0],
        }]}},
        "arcs": [],
        "transform": {"scale": [1, 1], "translate": [106.817276, -6.138229]},
        "bbox": [106.817276, -6.138229, 106.817276, -6.138229],
    },
}  # fmt: skip


async def test_the_api_wrapper_topology_and_geojson_are_read(tmp_path: Path) -> None:
    topo = tmp_path / "reports.json"
    topo.write_text(json.dumps(API_TOPOLOGY))
    events, publisher = await run(FloodReportImport([topo], WIB))
    assert publisher.dead == []
    [r] = events
    # Quantized [0, 0] plus the translate: the point, not null island.
    assert (r.report_id, r.lon, r.lat) == ("petabencana-5519", 106.817276, -6.138229)
    assert r.timestamp == datetime(2016, 12, 9, 21, 37, tzinfo=UTC) and r.depth_cm is None
    assert "@ahokbtp" not in (r.note or "") and "@…" in (r.note or "")  # no usernames kept
    # The same wrapper around GeoJSON, with report_data as a JSON string (as some API
    # versions send it) and another hazard next to the flood.
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [110.42, -6.99]},
               "properties": {"pkey": "77", "created_at": "2026-11-30T09:15:00+07:00",
                              "disaster_type": "flood", "source": "grasp", "text": "banjir",
                              "report_data": '{"report_type": "flood", "flood_depth": 45}'}}  # fmt: skip
    quake = {
        **feature,
        "properties": {**feature["properties"], "pkey": "78", "disaster_type": "earthquake"},
    }  # type: ignore[dict-item]
    geo = tmp_path / "reports.geojson"
    geo.write_text(json.dumps({"statusCode": 200, "result": {"type": "FeatureCollection", "features": [feature, quake]}}))  # fmt: skip
    events, publisher = await run(FloodReportImport([geo], WIB))
    assert [(e.report_id, e.depth_cm) for e in events] == [("petabencana-77", 45.0)]
    assert publisher.skipped == {"not a flood report": 1}


async def test_unusable_reports_are_dead_lettered_without_their_text(tmp_path: Path) -> None:
    def feature(**props: Any) -> dict[str, Any]:
        base = {
            "created_at": "2017-02-20T08:00:00",
            "text": "rumah Pak Budi 0812345678",
            "source": "qlue",
        }
        return {"type": "Feature", "geometry": props.pop("geometry", {"type": "Point", "coordinates": [110.42, -6.99]}),
                "properties": {**base, **props}}  # fmt: skip

    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature(created_at="kemarin"), feature(report_data={"flood_depth": "selutut"}),
        feature(report_data={"flood_depth": 900}), feature(geometry={"type": "Point", "coordinates": [0, 0]}),
        feature(geometry=None), feature(),
    ]}))  # fmt: skip
    events, publisher = await run(FloodReportImport([path], WIB))
    assert len(events) == 1
    reasons = [(reason, detail) for _, reason, detail, _ in publisher.dead]
    assert reasons == [
        ("schema_violation", "created_at 'kemarin' is not an ISO 8601 time"),
        ("schema_violation", "report_data.flood_depth 'selutut' is not a number of centimetres"),
        ("impossible_value", "report_data.flood_depth 900 cm is outside 0..500 cm"),
        ("impossible_value", "lon=0 lat=0 is no place (a missing position)"),
        ("schema_violation", "the report has no point"),
    ]
    assert all(b"0812345678" not in raw and b"Budi" not in raw for raw, *_ in publisher.dead)


async def test_a_file_that_is_no_report_archive_says_so(tmp_path: Path) -> None:
    denied = tmp_path / "denied.json"
    denied.write_text(
        json.dumps({"statusCode": 400, "error": "Bad Request", "message": "bad admin"})
    )
    with pytest.raises(SourceError, match="statusCode 400 bad admin"):
        await run(FloodReportImport([denied], WIB))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(SourceError, match="neither a GeoJSON FeatureCollection"):
        await run(FloodReportImport([other], WIB))


# --- the worker: reports without depth ------------------------------------------------


def processor(keep_outside: bool = False) -> FloodProcessor:
    return FloodProcessor(
        load_rules(), load_stations(), gazetteer(), 300.0, keep_outside=keep_outside
    )


def handle(
    proc: FloodProcessor, events: list[BaseModel], now: datetime = NOW
) -> tuple[Emitted, list[Any]]:
    out = Emitted()
    value = orjson.dumps([e.model_dump(mode="json") for e in events])
    offset = proc.offset(FLOOD_REPORTS.name) + 1
    _, rejected = proc.handle(Message(FLOOD_REPORTS.name, 0, offset, None, value), now, out)
    proc.tick(now, out)
    return out, rejected


def report(rid: str, depth: float | None, minutes_ago: float = 10) -> FloodReport:
    when = datetime.fromtimestamp(NOW.timestamp() - minutes_ago * 60, UTC)
    return FloodReport(report_id=rid, lat=-6.9995, lon=110.4530, depth_cm=depth, timestamp=when,
                       note="banjir", source="petabencana:grasp")  # fmt: skip


def test_a_report_without_depth_is_stored_and_counts_as_waspada_only() -> None:
    proc = processor()
    out, rejected = handle(proc, [report("a", None), report("b", None)])
    assert rejected == []
    stored = out.tables["flood_reports"][1]
    assert [(r[0], r[4]) for r in stored] == [("a", None), ("b", None)]
    status = out.tables["flood_kecamatan_status"][1][-1]
    # kecamatan, updated_at, status, level_index, gauge, reports, count, deepest, stations
    assert (status[2], status[3], status[5], status[6], status[7]) == (
        "waspada",
        1,
        "waspada",
        2,
        0.0,
    )
    # One measured depth, not corroborated (the depth-less ones agree only on Waspada, and
    # no gauge there is raised), sets no more than Waspada; three at Awas depth do.
    out, _ = handle(proc, [report("c", 80)])
    status = out.tables["flood_kecamatan_status"][1][-1]
    assert (status[2], status[6], status[7]) == ("waspada", 3, 80.0)
    out, _ = handle(proc, [report("e", 75), report("f", 90)])
    status = out.tables["flood_kecamatan_status"][1][-1]
    assert (status[2], status[6], status[7]) == ("awas", 5, 90.0)
    # Below the first band a measured report is no flood; a depth-less one still is evidence.
    proc = processor()
    out, _ = handle(proc, [report("d", 5)])
    assert out.tables["flood_kecamatan_status"][1][-1][2] == "normal"
    out, _ = handle(proc, [report("e", None)])
    assert out.tables["flood_kecamatan_status"][1][-1][2] == "waspada"


async def test_the_real_archive_lands_end_to_end_when_the_area_check_is_off() -> None:
    events, _ = await run(FloodReportImport([ARCHIVE], WIB))
    # Jakarta is outside Kota Semarang: dead-lettered as such by default...
    _, rejected = handle(processor(), events)
    assert {r.reason.value for r in rejected} == {"outside_service_area"} and len(rejected) == 69
    # ...and stored under "outside", in no kecamatan's status, with SITROOM_SERVICE_AREA=none.
    out, rejected = handle(processor(keep_outside=True), events)
    assert rejected == []
    rows = out.tables["flood_reports"][1]
    assert len(rows) == 69 and {r[5] for r in rows} == {"outside"}
    assert sum(r[4] is None for r in rows) == 62
    assert (
        "flood_kecamatan_status" not in out.tables or out.tables["flood_kecamatan_status"][1] == []
    )


# --- gauge tables -----------------------------------------------------------------


async def test_a_real_pintu_air_table_backfills_its_gates() -> None:
    gates = stations_map("Katulampa=GARANG-SAMPANGAN,Depok=BKT-MAJAPAHIT,Manggarai=BKB-SIMONGAN")
    events, publisher = await run(GaugeReplay([PINTU_AIR], gates, WIB))
    rows = list(csv.DictReader(PINTU_AIR.open()))
    assert publisher.dead == [] and not publisher.skipped  # weather columns are no readings
    assert len(events) == 3 * len(rows) == 216
    assert GaugeReplay.topic is GAUGE_READINGS  # where the MQTT bridge puts live readings
    first = events[0]
    # "2021-10-16 00:00:00" without an offset is WIB.
    assert (first.station_id, first.value, first.timestamp, first.source) == (
        "GARANG-SAMPANGAN", 10.0, datetime(2021, 10, 15, 17, 0, tzinfo=UTC), "gauge-replay")  # fmt: skip
    manggarai = [e.value for e in events if e.station_id == "BKB-SIMONGAN"]
    assert manggarai == [float(r["Manggarai (air)"]) for r in rows]


async def test_an_unknown_gate_is_dead_lettered_once_with_a_human_detail() -> None:
    gates = stations_map("Katulampa=GARANG-SAMPANGAN,Manggarai=BKB-SIMONGAN")
    events, publisher = await run(GaugeReplay([PINTU_AIR], gates, WIB))
    assert len(events) == 144
    [(_raw, reason, detail, where)] = publisher.dead
    assert reason == "unknown_entity"
    assert detail == (
        "gate 'Depok (air)' is not in the map (--map): its 72 readings in"
        " pintu_air_jakarta_2021-10-16_hourly.csv were not replayed; map it to a station of"
        ' schemas/flood_stations.toml, or to "" to leave it out'
    )
    assert where.endswith("pintu_air_jakarta_2021-10-16_hourly.csv:2")
    assert publisher.skipped == {"gate not in the map": 71}
    # Left out on purpose: counted, not dead-lettered.
    gates = stations_map("Katulampa=GARANG-SAMPANGAN,Manggarai=BKB-SIMONGAN,Depok=")
    _, publisher = await run(GaugeReplay([PINTU_AIR], gates, WIB))
    assert publisher.dead == [] and publisher.skipped == {"left out by the map": 72}


def test_a_map_naming_no_registry_station_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(
        MapError, match=r"names station 'KATULAMPA', which is not in schemas/flood_stations\.toml"
    ):
        stations_map("Katulampa=KATULAMPA")
    with pytest.raises(MapError, match="unit 'furlong'"):
        stations_map("Katulampa=BKB-SIMONGAN:furlong")
    args = build_parser().parse_args(
        ["connect", "gauge-replay", "--file", str(PINTU_AIR), "--map", str(tmp_path / "none.toml")]
    )
    with pytest.raises(ConfigError, match="no such map file"):
        flood_source(Settings(), args)


async def test_metres_become_centimetres_and_header_thresholds_are_compared(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A Dinas SDA-style sheet: thresholds above the header (Jakarta numbers Siaga down:
    # Siaga 3 is Waspada, Siaga 1 Awas), readings in metres with decimal commas.
    table = tmp_path / "tma.csv"
    table.write_text(
        "Laporan Tinggi Muka Air;;;\n"
        "Siaga 3;;2,50;1,80\n"
        "Siaga 2;;3,20;2,30\n"
        "Siaga 1;;3,80;2,90\n"
        "Tanggal;Jam;Simongan (m);Muara\n"
        "30/11/2026;01.00;2,31;1,05\n"
        "30/11/2026;02.00;-;1,10\n"
        "30/11/2026;24.00;2,40;\n"
        "Rata-rata;;2,35;1,07\n",
        encoding="utf-8",
    )
    map_file = tmp_path / "gates.toml"
    map_file.write_text(
        'unit = "m"\n[gates]\n"Simongan" = "BKB-SIMONGAN"\n'
        '"Muara" = { station = "BKB-MUARA", unit = "m" }\n'
    )
    gates = load_map(str(map_file), load_stations())
    with caplog.at_level(logging.WARNING):
        events, publisher = await run(GaugeReplay([table], gates, WIB))
    assert [(e.station_id, e.value, e.timestamp.isoformat()) for e in events] == [
        ("BKB-SIMONGAN", 231.0, "2026-11-29T18:00:00+00:00"),
        ("BKB-MUARA", 105.0, "2026-11-29T18:00:00+00:00"),
        ("BKB-MUARA", 110.0, "2026-11-29T19:00:00+00:00"),
        ("BKB-SIMONGAN", 240.0, "2026-11-30T17:00:00+00:00"),  # 24.00 is the next midnight
    ]
    assert publisher.dead == []
    assert publisher.skipped == {"no reading": 2, "summary row": 2}
    # Simongan's table thresholds match the registry (250/320/380 cm); Muara's do not.
    said = [r.getMessage() for r in caplog.records if "thresholds" in r.getMessage()]
    assert len(said) == 1 and "'Muara'" in said[0] and "BKB-MUARA" in said[0]
    assert "waspada 180 cm (registry 180)" not in said[0] and "siaga 230 cm" not in said[0]
    assert "awas 290 cm (registry 280)" in said[0]


async def test_a_wrong_unit_is_dead_lettered_with_a_hint(tmp_path: Path) -> None:
    gates = stations_map("Manggarai=BKB-SIMONGAN:m")
    events, publisher = await run(GaugeReplay([PINTU_AIR], gates, WIB))
    assert events == []
    reason, detail = publisher.dead[0][1], publisher.dead[0][2]
    assert reason == "impossible_value"
    assert detail == (
        "'Manggarai (air)' 555 m = 55500 cm is outside BKB-SIMONGAN's 0..700 cm;"
        " read in cm it would fit (set its unit in the map)"
    )


async def test_a_long_table_and_a_workbook_are_read(tmp_path: Path) -> None:
    # One row per reading, as the DSDA posko banjir JSON and its CSV exports have it.
    long = tmp_path / "tma_long.csv"
    long.write_text(
        "lokasi_pengamatan,sungai,tinggi_air,tgl_data,jam_data,status\n"
        "Bendung Simongan,Garang,231,30/11/2026,09:00,Normal\n"
        "PS. Depok,Ciliwung,110,30/11/2026,09:00,Normal\n"
        "Bendung Simongan,Garang,rusak,30/11/2026,10:00,Normal\n"
    )
    gates = stations_map("Bendung Simongan=BKB-SIMONGAN")
    events, publisher = await run(GaugeReplay([long], gates, WIB))
    assert [(e.station_id, e.value, e.timestamp.hour) for e in events] == [
        ("BKB-SIMONGAN", 231.0, 2)
    ]
    assert [(d[1], d[2]) for d in publisher.dead] == [
        ("schema_violation", "'Bendung Simongan' at 2026-11-30 03:00 UTC: 'rusak' is not a number"),
        ("unknown_entity", "gate 'PS. Depok' is not in the map (--map): its 1 readings in"
                           ' tma_long.csv were not replayed; map it to a station of'
                           ' schemas/flood_stations.toml, or to "" to leave it out'),
    ]  # fmt: skip
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Waktu", "Simongan", "Cuaca"])
    sheet.append([datetime(2026, 11, 30, 8, 0), 2.5, "Cerah"])
    sheet.append([datetime(2026, 11, 30, 9, 0), 2.75, "Hujan"])
    workbook = tmp_path / "tma.xlsx"
    book.save(workbook)
    events, publisher = await run(
        GaugeReplay([workbook], stations_map("Simongan=BKB-SIMONGAN:m"), WIB)
    )
    assert [(e.value, e.timestamp.hour) for e in events] == [(250.0, 1), (275.0, 2)]
    assert publisher.dead == []


async def test_usgs_water_services_json_gives_gage_heights_in_cm() -> None:
    gates = stations_map("01491000=BKB-SIMONGAN,01645000=")
    events, publisher = await run(GaugeReplay([USGS], gates, WIB))
    assert publisher.dead == []
    assert publisher.skipped == {"not a water level or rain series": 10, "left out by the map": 5}
    series = json.loads(USGS.read_text())["value"]["timeSeries"][1]
    assert series["variable"]["unit"]["unitCode"] == "ft"
    feet = [float(v["value"]) for v in series["values"][0]["value"]]
    assert [e.value for e in events] == [round(f * 30.48, 3) for f in feet]
    assert events[0].value == 197.51  # 6.48 ft
    assert events[0].timestamp == datetime(2019, 2, 14, 5, 0, tzinfo=UTC)  # -05:00 kept


def test_an_old_backfill_next_to_live_gauges_lands_and_is_not_dead_lettered() -> None:
    """Older data must land: the worker stores every valid reading whatever its time; one
    older than its station's applied state is counted late, never dead-lettered."""
    proc = FloodProcessor(load_rules(), load_stations(), gazetteer(), 300.0)
    live = GaugeReading(station_id="BKB-SIMONGAN", kind="level", value=200, timestamp=NOW)  # type: ignore[arg-type]
    old = [GaugeReading(station_id="BKB-SIMONGAN", kind="level", value=555 + h,  # type: ignore[arg-type]
                        timestamp=datetime(2021, 10, 15, 17 + h, tzinfo=UTC)) for h in range(3)]  # fmt: skip
    out = Emitted()
    for offset, batch in enumerate([[live], old]):
        value = orjson.dumps([e.model_dump(mode="json") for e in batch])
        _, rejected = proc.handle(Message(GAUGE_READINGS.name, 0, offset, None, value), NOW, out)
        assert rejected == []
        proc.tick(NOW, out)
    stored = out.tables["flood_gauge_readings"][1]
    assert sorted(r[3] for r in stored) == [200, 555, 556, 557]


async def test_a_file_of_thresholds_without_readings_says_what_it_lacks() -> None:
    # Real publishers ship the gates' thresholds beside their tables (this one is real).
    gates = stations_map("Katulampa=GARANG-SAMPANGAN")
    with pytest.raises(SourceError, match=r"no header with a time column \(Tanggal, Jam"):
        await run(GaugeReplay([PINTU_AIR_THRESHOLDS], gates, WIB))
