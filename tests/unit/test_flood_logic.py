import logging
from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from connectors.flood_simulator import FloodSimulator
from connectors.mqtt_bridge import client_id_for, flood_route, to_event
from schemas.alarm_rules import load_rules
from schemas.catalog import FLOOD_REPORTS, GAUGE_READINGS
from schemas.deadletter import Reason
from schemas.flood import Station, StationRegistry, load_stations
from schemas.spatial import gazetteer
from streams.flood_logic import FloodProcessor, Report
from streams.metrics import LATE_EVENTS
from streams.pipeline import Emitted, Message, alarm_row

T0 = 1_780_000_000.0
NOW = datetime.fromtimestamp(T0 + 86400, UTC)


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def reading(station: str, minute: float, value: float, kind: str = "level") -> bytes:
    ts = datetime.fromtimestamp(T0 + minute * 60, UTC).isoformat()
    return orjson.dumps({"station_id": station, "kind": kind, "value": value, "timestamp": ts})


def feed(
    proc: FloodProcessor,
    values: list[bytes],
    topic: str = GAUGE_READINGS.name,
    now: datetime = NOW,
) -> tuple[Emitted, list]:  # type: ignore[type-arg]
    """Each message handled and followed by a tick, as the pipeline does, at wall ``now``."""
    out, rejected = Emitted(), []
    for offset, value in enumerate(values, start=proc.offset(topic) + 1):
        _, rej = proc.handle(Message(topic, 0, offset, None, value), now, out)
        rejected += rej
        proc.tick(now, out)
    return out, rejected


def live(proc: FloodProcessor, station: str, minute: float, value: float) -> Emitted:
    """A reading arriving a second after it was taken, and a tick half a minute later (its
    station's watermark has then passed it)."""
    out, _ = feed(proc, [reading(station, minute, value)], now=at(T0 + minute * 60 + 1))
    proc.tick(at(T0 + minute * 60 + 30), out)
    return out


def processor(registry: StationRegistry | None = None) -> FloodProcessor:
    return FloodProcessor(load_rules(), registry or load_stations(), gazetteer(), 300.0)


def kinds(out: Emitted, kind: str) -> list[tuple[str, str, str]]:
    return [(a.entity, a.reason.value, a.level) for a in out.alarms if a.kind == kind]


def test_level_bands_escalate_rise_is_in_cm_per_hour_and_status_follows() -> None:
    proc = processor()
    # One reading a minute: +3 cm/min (180 cm/h) for 20 minutes, then +6 cm/min (360 cm/h).
    levels = [200 + 3 * m if m <= 20 else 260 + 6 * (m - 20) for m in range(36)]
    out, rejected = feed(proc, [reading("BKB-SIMONGAN", m, v) for m, v in enumerate(levels)])
    assert rejected == []
    assert [(r, lv) for _, r, lv in kinds(out, "flood_level")] == [
        ("raised", "waspada"),
        ("escalated", "siaga"),
    ]
    rise = [a for a in out.alarms if a.kind == "flood_rise"]
    assert [a.level for a in rise] == ["rising", "rising fast"]
    # The first rate is measured a quarter of an hour in, over those 15 minutes.
    assert rise[0].started_at == at(T0 + 15 * 60) and rise[0].value == 180.0
    assert rise[0].context["unit"] == "cm/h" and rise[0].context["level_cm"] == 245.0
    assert rise[0].context["interval_min"] == 15.0
    rows = out.tables["flood_kecamatan_status"][1]
    last = [r for r in rows if r[0] == "Semarang Barat"][-1]
    assert last[2] == "siaga" and last[8] == ["BKB-SIMONGAN"]


def test_an_hourly_gauge_raises_flood_rise_over_the_hour_between_its_readings() -> None:
    proc = processor()
    assert load_stations().get("POLDER-TAMBAKLOROK").cadence_s == 3600  # type: ignore[union-attr]
    out = Emitted()
    for hour, level in enumerate([50, 60, 70, 200, 190]):
        out.merge(live(proc, "POLDER-TAMBAKLOROK", hour * 60, level))
    rise = [a for a in out.alarms if a.kind == "flood_rise"]
    assert [(a.state.value, a.level) for a in rise][:1] == [("raised", "rising")]
    assert rise[0].value == 130.0 and rise[0].context["interval_min"] == 60.0
    assert rise[0].started_at == at(T0 + 3 * 3600)


def test_an_hourly_gauge_raises_and_clears_its_level_with_one_reading_each() -> None:
    """A reading stands for its station's cadence: an hourly gauge is not an hour late."""
    proc = processor()
    out = Emitted()
    for hour, level in enumerate([50, 150, 150, 60]):
        out.merge(live(proc, "POLDER-TAMBAKLOROK", hour * 60, level))
        if hour == 1:  # the first reading in siaga raises at once
            assert kinds(out, "flood_level") == [("POLDER-TAMBAKLOROK", "raised", "siaga")]
    level = [a for a in out.alarms if a.kind == "flood_level"]
    assert (level[0].state.value, level[0].started_at) == ("raised", at(T0 + 3600))
    assert [(a.state.value, a.last_seen) for a in level][-1] == ("cleared", at(T0 + 3 * 3600))


def test_hourly_gauges_do_not_flap_silent_and_fast_ones_go_silent_in_seconds() -> None:
    proc = processor()
    out = Emitted()
    for hour in range(6):
        out.merge(live(proc, "POLDER-TAMBAKLOROK", hour * 60 + (hour % 2) * 20, 60))
        for quiet_min in range(5, 61, 5):  # ticks between its readings
            proc.tick(at(T0 + hour * 3600 + quiet_min * 60), out)
    assert kinds(out, "station_silent") == []
    proc.tick(at(T0 + 5 * 3600 + 20 * 60 + 3 * 3600 + 60), out)  # three missed readings
    assert kinds(out, "station_silent") == [("POLDER-TAMBAKLOROK", "raised", "silent")]

    fast = processor()
    first = live(fast, "BKT-KALIGAWE", 0, 100)
    out = Emitted()
    for second in range(40, 200, 10):  # BKB-SIMONGAN reports every 10 s, BKT-KALIGAWE stopped
        minute = second / 60
        out.merge(feed(fast, [reading("BKB-SIMONGAN", minute, 100)], now=at(T0 + second + 1))[0])
        fast.tick(at(T0 + second + 5), out)
    silent = [a for a in out.alarms if a.kind == "station_silent"]
    assert [(a.entity, a.level) for a in silent] == [
        ("BKT-KALIGAWE", "silent"),
        ("BKT-KALIGAWE", "silent long"),
    ]
    assert silent[0].threshold == 0.5  # minutes: three readings of 10 s
    assert not first.alarms
    out = live(fast, "BKT-KALIGAWE", 200 / 60, 100)
    assert [(a.reason.value, a.level) for a in out.alarms if a.entity == "BKT-KALIGAWE"] == [
        ("recovered", "normal")
    ]


def test_a_replay_of_old_readings_next_to_live_gauges_is_judged_on_its_own_clock() -> None:
    old = [reading("BKT-MAJAPAHIT", m - 24 * 60, 200 + 5 * m) for m in range(30)]  # a day ago
    alone = processor()
    replay_alone, _ = feed(alone, old, now=at(T0 + 2))
    alone.tick(at(T0 + 15), replay_alone)

    proc = processor()
    out = Emitted()
    for m in range(30):  # live gauge every 10 s, the replay as fast as it can
        out.merge(feed(proc, [reading("BKB-SIMONGAN", m / 6, 100)], now=at(T0 + m * 10 + 1))[0])
        step, _ = feed(proc, [old[m]], now=at(T0 + m * 10 + 2))
        out.merge(step)
    proc.tick(at(T0 + 305), out)
    replayed = [a for a in out.alarms if a.entity == "BKT-MAJAPAHIT"]
    assert [(a.kind, a.level) for a in replayed] == [(a.kind, a.level) for a in replay_alone.alarms]
    assert ("flood_level", "raised", "waspada") in [
        (a.kind, a.reason.value, a.level) for a in replayed
    ]
    assert not [a for a in out.alarms if a.entity == "BKB-SIMONGAN"]  # live: never silent
    assert proc.late == 0


def test_a_reading_older_than_its_station_applied_is_stored_counted_and_moves_nothing() -> None:
    proc = processor()
    for m in range(10):
        live(proc, "BKB-SIMONGAN", m, 100)
    late_before = LATE_EVENTS.labels(GAUGE_READINGS.name)._value.get()
    out, rejected = feed(proc, [reading("BKB-SIMONGAN", 3.5, 600)], now=at(T0 + 10 * 60))
    proc.tick(at(T0 + 11 * 60), out)
    assert rejected == [] and proc.late == 1
    assert LATE_EVENTS.labels(GAUGE_READINGS.name)._value.get() == late_before + 1
    assert [r[3] for r in out.tables["flood_gauge_readings"][1]] == [600]  # stored
    assert kinds(out, "flood_level") == kinds(out, "flood_rise") == []  # 600 cm: awas, ignored
    # A repeat of an applied reading is a duplicate, not late.
    feed(proc, [reading("BKB-SIMONGAN", 5, 100)], now=at(T0 + 11 * 60))
    assert proc.late == 1 and proc.duplicates == 1


def test_readings_shuffled_within_the_lateness_give_the_same_alarms() -> None:
    levels = [(m / 6, 200 + m * 0.8) for m in range(120)]  # every 10 s: +288 cm/h
    in_order = processor()
    a, _ = feed(in_order, [reading("BKB-SIMONGAN", m, v) for m, v in levels])
    in_order.tick(at(T0 + 86400 * 2), a)
    shuffled = processor()
    swapped = [levels[i ^ 1] for i in range(len(levels))]  # neighbours 10 s apart swapped
    b, _ = feed(shuffled, [reading("BKB-SIMONGAN", m, v) for m, v in swapped])
    shuffled.tick(at(T0 + 86400 * 2), b)
    assert [alarm_row(x) for x in a.alarms] == [alarm_row(x) for x in b.alarms]
    assert any(x.kind == "flood_rise" for x in a.alarms)


def test_a_station_removed_from_the_registry_is_dropped_when_state_loads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proc = processor()
    feed(proc, [reading("BKB-MUARA", m, 250) for m in range(5)])
    assert "flood_level/BKB-MUARA" in proc.alarms.state.machines
    full = load_stations()
    smaller = full.model_copy(
        update={"stations": [s for s in full.stations if s.id != "BKB-MUARA"]}
    )
    with caplog.at_level(logging.WARNING):
        restored = FloodProcessor(load_rules(), smaller, gazetteer(), 300.0, proc.dumps())
    assert [r.station for r in caplog.records if hasattr(r, "station")] == ["BKB-MUARA"]  # type: ignore[attr-defined]
    assert "BKB-MUARA" not in restored.state.stations
    assert not [k for k in restored.alarms.state.machines if k.endswith("/BKB-MUARA")]
    out = Emitted()
    restored.tick(NOW, out)
    assert [(a.kind, a.state.value, a.reason.value) for a in out.alarms] == [
        ("flood_level", "cleared", "silence")
    ]


def test_a_station_cadence_must_be_positive() -> None:
    station = load_stations().stations[0].model_dump()
    with pytest.raises(ValidationError, match="cadence_s"):
        Station.model_validate({**station, "cadence_s": 0})


def test_the_simulator_sends_each_station_at_its_cadence() -> None:
    sim = FloodSimulator(load_stations(), interval_s=60, start=T0, garbage_every=0)
    sent: dict[str, int] = {}
    for n in range(120):  # two hours
        for pub in sim.tick(T0 + n * 60):
            station = pub.topic.split("/")[2]
            sent[station] = sent.get(station, 0) + 1
    assert sent["POLDER-TAMBAKLOROK"] == sent["RAIN-SIMONGAN"] == 2
    assert sent["BKB-SIMONGAN"] == 120


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


def test_citizen_reports_set_the_kecamatan_status_and_expire() -> None:
    proc = processor()
    feed(proc, [reading("BKT-MAJAPAHIT", 0, 50)])
    report = {"report_id": "r1", "lat": -6.9995, "lon": 110.4530, "depth_cm": 35,
              "timestamp": datetime.fromtimestamp(T0 + 60, UTC).isoformat()}  # fmt: skip
    far = {**report, "report_id": "r2", "lat": -6.2, "lon": 106.8}
    again = orjson.dumps(report)  # a redelivery counts once
    out, rejected = feed(
        proc, [orjson.dumps(report), orjson.dumps(far), again], topic=FLOOD_REPORTS.name
    )
    assert [r.reason for r in rejected] == [Reason.OUTSIDE_SERVICE_AREA]
    status = [r for r in out.tables["flood_kecamatan_status"][1] if r[0] == "Gayamsari"][-1]
    # One citizen's 35 cm is Siaga's depth, but one report alone sets no more than Waspada.
    assert (status[1], status[2], status[5], status[6]) == (at(T0 + 60), "waspada", "waspada", 1)
    more = [{**report, "report_id": f"r{i}", "depth_cm": d, "lat": -6.9990 + i / 1e4}
            for i, d in ((3, 80), (4, 40))]  # fmt: skip
    out, _ = feed(proc, [orjson.dumps(m) for m in more], topic=FLOOD_REPORTS.name)
    status = [r for r in out.tables["flood_kecamatan_status"][1] if r[0] == "Gayamsari"][-1]
    # Three agree on Siaga or deeper (only one on Awas): Siaga.
    assert (status[2], status[5], status[6], status[7]) == ("siaga", "siaga", 3, 80.0)
    out, _ = feed(proc, [reading("BKT-MAJAPAHIT", 7 * 60, 50)])  # seven hours later
    status = [r for r in out.tables["flood_kecamatan_status"][1] if r[0] == "Gayamsari"][-1]
    assert status[2] == "normal" and status[6] == 0 and status[1] == at(T0 + 7 * 3600)


def test_one_report_is_trusted_beyond_waspada_when_a_gauge_agrees() -> None:
    cfg = load_rules().flood
    proc = processor()
    deep = [Report(T0, 90.0)]
    assert proc._reports_level(deep) == 1  # alone: Waspada at most
    assert proc._reports_level(deep, gauge_level=1) == 3  # a gauge at Waspada: Awas
    agreeing = [Report(T0 + i, 90.0) for i in range(cfg.corroborating_reports)]
    assert proc._reports_level(agreeing) == 3
    assert proc._reports_level([Report(T0, None), Report(T0, 5.0)]) == 1
    assert proc._reports_level([Report(T0, 5.0)]) == 0
    assert proc._reports_level([]) == 0


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
