from datetime import UTC, datetime

import orjson

from connectors.mqtt_bridge import client_id_for, flood_route, to_event
from schemas.alarm_rules import load_rules
from schemas.catalog import FLOOD_REPORTS, GAUGE_READINGS
from schemas.deadletter import Reason
from schemas.flood import load_stations
from schemas.spatial import gazetteer
from streams.flood_logic import FloodProcessor
from streams.pipeline import Emitted, Message

T0 = 1_780_000_000.0
NOW = datetime.fromtimestamp(T0 + 86400, UTC)


def reading(station: str, minute: float, value: float, kind: str = "level") -> bytes:
    ts = datetime.fromtimestamp(T0 + minute * 60, UTC).isoformat()
    return orjson.dumps({"station_id": station, "kind": kind, "value": value, "timestamp": ts})


def feed(
    proc: FloodProcessor, values: list[bytes], topic: str = GAUGE_READINGS.name
) -> tuple[Emitted, list]:  # type: ignore[type-arg]
    out, rejected = Emitted(), []
    for offset, value in enumerate(values, start=proc.offset(topic) + 1):
        _, rej = proc.handle(Message(topic, 0, offset, None, value), NOW, out)
        rejected += rej
        proc.tick(NOW, 0.0, out)
    return out, rejected


def processor() -> FloodProcessor:
    return FloodProcessor(load_rules(), load_stations(), gazetteer(), 300.0)


def test_level_bands_escalate_and_status_follows() -> None:
    proc = processor()
    levels = [200, 240, 260, 262, 265, 300, 330, 335, 340]  # one reading a minute
    out, rejected = feed(proc, [reading("BKB-SIMONGAN", m, v) for m, v in enumerate(levels)])
    assert rejected == []
    transitions = [(a.kind, a.reason.value, a.level) for a in out.alarms if a.kind == "flood_level"]
    assert transitions == [
        ("flood_level", "raised", "waspada"),
        ("flood_level", "escalated", "siaga"),
    ]
    rise = [a for a in out.alarms if a.kind == "flood_rise"]
    assert [a.level for a in rise] == ["rising", "rising fast"]  # +40 cm, then +140 cm in 8 minutes
    rows = out.tables["flood_kecamatan_status"][1]
    last = [r for r in rows if r[0] == "Semarang Barat"][-1]
    assert last[2] == "siaga" and last[8] == ["BKB-SIMONGAN"]


def test_bad_readings_are_rejected_with_reasons() -> None:
    proc = processor()
    _, rejected = feed(proc, [
        reading("NOPE", 0, 10), reading("BKB-SIMONGAN", 0, -3), reading("BKB-SIMONGAN", 0, 900),
        reading("RAIN-SIMONGAN", 0, 10, kind="level"), b"{not json",
        orjson.dumps({"station_id": "BKB-SIMONGAN", "kind": "level", "value": 1,
                      "timestamp": datetime(2100, 1, 1, tzinfo=UTC).isoformat()}),
    ])  # fmt: skip
    assert [r.reason for r in rejected] == [
        Reason.UNKNOWN_ENTITY, Reason.IMPOSSIBLE_VALUE, Reason.IMPOSSIBLE_VALUE,
        Reason.SCHEMA, Reason.INVALID_JSON, Reason.FUTURE_TIMESTAMP,
    ]  # fmt: skip


def test_silent_station_raises_and_clears_when_it_reports_again() -> None:
    proc = processor()
    feed(proc, [reading("BKT-KALIGAWE", 0, 100), reading("BKB-SIMONGAN", 0, 100)])
    out, _ = feed(proc, [reading("BKB-SIMONGAN", m, 100) for m in range(1, 21)])
    silent = [a for a in out.alarms if a.kind == "station_silent"]
    assert [(a.entity, a.state.value) for a in silent] == [("BKT-KALIGAWE", "raised")]
    out, _ = feed(proc, [reading("BKT-KALIGAWE", 21, 100)])
    assert [(a.entity, a.state.value) for a in out.alarms if a.kind == "station_silent"] == [
        ("BKT-KALIGAWE", "cleared")
    ]


def test_citizen_reports_set_the_kecamatan_status_and_expire() -> None:
    proc = processor()
    feed(proc, [reading("BKT-MAJAPAHIT", 0, 50)])
    report = {"report_id": "r1", "lat": -6.9995, "lon": 110.4530, "depth_cm": 35,
              "timestamp": datetime.fromtimestamp(T0 + 60, UTC).isoformat()}  # fmt: skip
    far = {**report, "report_id": "r2", "lat": -6.2, "lon": 106.8}
    out, rejected = feed(proc, [orjson.dumps(report), orjson.dumps(far)], topic=FLOOD_REPORTS.name)
    assert [r.reason for r in rejected] == [Reason.OUTSIDE_SERVICE_AREA]
    status = [r for r in out.tables["flood_kecamatan_status"][1] if r[0] == "Gayamsari"][-1]
    assert (status[2], status[5], status[6]) == ("siaga", "siaga", 1)
    out, _ = feed(proc, [reading("BKT-MAJAPAHIT", 7 * 60, 50)])  # seven hours later
    status = [r for r in out.tables["flood_kecamatan_status"][1] if r[0] == "Gayamsari"][-1]
    assert status[2] == "normal" and status[6] == 0


def test_state_survives_a_checkpoint() -> None:
    proc = processor()
    feed(proc, [reading("BKB-SIMONGAN", m, 300) for m in range(4)])
    restored = FloodProcessor(load_rules(), load_stations(), gazetteer(), 300.0, proc.dumps())
    out, _ = feed(restored, [reading("BKB-SIMONGAN", 4, 300)])
    assert not [a for a in out.alarms if a.state.value == "raised"]  # the open alarm came back
    assert restored.offset(GAUGE_READINGS.name) == 4


def test_mqtt_topic_and_payload_become_a_reading() -> None:
    route = flood_route("semarang")
    event, _, _ = to_event(
        route,
        "semarang/flood/BKB-SIMONGAN/level",
        b'{"value": 12.5, "timestamp": "2026-01-01T00:00:00Z"}',
    )
    assert event is not None and event.station_id == "BKB-SIMONGAN" and event.value == 12.5  # type: ignore[attr-defined]
    assert to_event(route, "semarang/flood/X/level", b"ERR sensor timeout")[1] == "invalid_json"
    assert to_event(route, "semarang/flood/X/level", b"[1, 2]")[1] == "schema_violation"
    assert (
        to_event(
            route,
            "semarang/flood/X/temperature",
            b'{"value": 1, "timestamp": "2026-01-01T00:00:00Z"}',
        )[1]
        == "schema_violation"
    )
    assert to_event(route, "elsewhere/X/level", b"{}")[1] == "unrouted_topic"


def test_the_bridge_session_id_is_stable_per_route_and_distinct_across_prefixes() -> None:
    assert client_id_for(flood_route("semarang")) == "sitroom-bridge-semarang-flood"
    assert client_id_for(flood_route("e2e/run 7")) == "sitroom-bridge-e2e-run-7-flood"
    assert client_id_for(flood_route("a")) != client_id_for(flood_route("b"))
