from datetime import UTC, datetime, timedelta

import orjson

from connectors.cctv_simulator import CctvSimulator
from schemas.alarm_rules import load_rules
from schemas.cctv import load_cameras
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.spatial import gazetteer
from streams.cctv_logic import CctvPartition
from streams.pipeline import Emitted, Message
from tests.unit.stream_orders import last_versions

T0 = 1_780_000_000.0
NOW = datetime.fromtimestamp(T0 + 86400, UTC)


def ev(camera: str, kind: str, minute: float, confidence: float) -> dict:  # type: ignore[type-arg]
    return {"camera_id": camera, "kind": kind, "confidence": confidence,
            "timestamp": datetime.fromtimestamp(T0 + minute * 60, UTC).isoformat()}  # fmt: skip


def feed(part: CctvPartition, items: list[dict], idle_s: float = 0.0) -> tuple[Emitted, list]:  # type: ignore[type-arg]
    """Send the items at NOW, then tick ``idle_s`` of wall time later."""
    out, rejected = Emitted(), []
    for offset, item in enumerate(items, start=part.offset("c") + 1):
        _, rej = part.handle(Message("cctv.events", 0, offset, None, orjson.dumps(item)), NOW, out)
        rejected += rej
    part.tick(NOW + timedelta(seconds=idle_s), out)
    return out, rejected


def partition() -> CctvPartition:
    return CctvPartition(Settings(_env_file=None), load_rules(), load_cameras(), gazetteer())  # type: ignore[call-arg]


def test_events_within_the_gap_are_one_incident_and_alarms_follow_confidence() -> None:
    part = partition()
    smoke = [ev("CAM-PASARJOHAR", "fire_smoke", m, c) for m, c in [(0, 0.65), (3, 0.7), (6, 0.9)]]
    later = [ev("CAM-PASARJOHAR", "fire_smoke", 30, 0.7)]  # a new incident: past the 10-minute gap
    out, rejected = feed(part, smoke + later, idle_s=60)
    assert rejected == []
    incidents = {r[0]: r for r in out.tables["cctv_incidents"][1]}
    assert len(incidents) == 2
    first = next(r for r in out.tables["cctv_incidents"][1] if r[8] == "closed")
    assert (first[2], first[3], first[6], first[7]) == ("fire_smoke", "Semarang Tengah", 3, 0.9)
    steps = [(a.state.value, a.level, a.severity.value) for a in out.alarms]
    assert steps[:3] == [("raised", "possible", "warning"), ("updated", "confirmed", "critical"),
                         ("cleared", "normal", "critical")]  # fmt: skip
    assert steps[3] == ("raised", "possible", "warning")


def test_low_confidence_and_plate_reads_open_no_incident() -> None:
    part = partition()
    out, _ = feed(
        part,
        [
            ev("CAM-TUGUMUDA", "vandalism", 0, 0.35),
            {**ev("CAM-TUGUMUDA", "plate_read", 0, 0.99), "plate": "H 1234 AB"},
        ],
        idle_s=11,  # past the allowed lateness: the held events are released
    )
    assert "cctv_incidents" not in out.tables and out.alarms == []
    assert len(out.tables["cctv_events"][1]) == 2


def test_quiet_cameras_close_their_incidents_on_the_event_clock() -> None:
    part = partition()
    out, _ = feed(part, [ev("CAM-KALIGAWE", "accident", 0, 0.9)], idle_s=11)
    assert [a.state.value for a in out.alarms] == ["raised"]
    out, _ = feed(part, [], idle_s=10 * 60)  # the gap has passed, not yet the lateness too
    assert out.alarms == []
    out, _ = feed(part, [], idle_s=11 * 60)
    assert [a.state.value for a in out.alarms] == ["cleared"]
    assert out.tables["cctv_incidents"][1][0][8] == "closed"


def test_unknown_cameras_are_rejected() -> None:
    _, rejected = feed(
        partition(),
        [
            ev("CAM-NOPE", "crowd", 0, 0.9),
            {**ev("CAM-TUGUMUDA", "crowd", 0, 0.9), "confidence": 1.5},
        ],
    )
    assert [r.reason for r in rejected] == [Reason.UNKNOWN_ENTITY, Reason.SCHEMA]


def test_simulator_is_deterministic() -> None:
    a = CctvSimulator(load_cameras(), seed=2, start=T0, realtime=False)
    b = CctvSimulator(load_cameras(), seed=2, start=T0, realtime=False)
    assert a.tick(T0 + 90) == b.tick(T0 + 90)


def incidents(out: Emitted) -> dict:  # type: ignore[type-arg]
    return last_versions(out.tables["cctv_incidents"][1], lambda r: r[0], lambda r: r[9])


def test_grouping_does_not_depend_on_order_within_the_lateness() -> None:
    # 9 and 9.1 minutes bridge the 10-minute gap between 0 and 19 only if released first.
    minutes = [0, 9, 9.1, 19, 19.05]
    ordered, late_order = partition(), partition()
    a, _ = feed(ordered, [ev("CAM-KALIGAWE", "accident", m, 0.9) for m in minutes], idle_s=3600)
    shuffled = [minutes[i] for i in (0, 2, 1, 4, 3)]
    b, _ = feed(late_order, [ev("CAM-KALIGAWE", "accident", m, 0.9) for m in shuffled], idle_s=3600)
    assert incidents(a) == incidents(b) and len(incidents(a)) == 1
    assert next(iter(incidents(a).values()))[6:9] == (5, 0.9, "closed")
    assert [x.model_dump() for x in a.alarms] == [x.model_dump() for x in b.alarms]


def test_a_late_event_corrects_its_open_incident_and_past_the_horizon_is_late() -> None:
    part = partition()
    out, _ = feed(part, [ev("CAM-KALIGAWE", "accident", m, 0.7) for m in (0, 1, 2, 3)])
    out2, rejected = feed(part, [ev("CAM-KALIGAWE", "accident", 1.5, 0.95),
                                 ev("CAM-KALIGAWE", "accident", 1.5, 0.95),  # a redelivery
                                 ev("CAM-KALIGAWE", "crowd", -30, 0.95)])  # fmt: skip
    assert [r.reason for r in rejected] == [Reason.LATE]
    row = next(iter(incidents(out2).values()))
    assert row[6:9] == (4, 0.95, "open") and row[9] > incidents(out)[row[0]][9]
    assert [r[7] for r in out2.tables["cctv_events"][1]] == [row[0]]


def test_restored_state_of_a_camera_removed_from_the_registry_is_dropped() -> None:
    part = partition()
    feed(part, [ev("CAM-KALIGAWE", "accident", 0, 0.9), ev("CAM-TUGUMUDA", "crowd", 0, 0.95)],
         idle_s=11)  # fmt: skip
    saved = part.dumps()
    registry = load_cameras().model_copy(
        update={"cameras": [c for c in load_cameras().cameras if c.id != "CAM-KALIGAWE"]}
    )
    restored = CctvPartition(Settings(_env_file=None), load_rules(), registry, gazetteer(), saved)  # type: ignore[call-arg]
    assert list(restored.state.cameras) == ["CAM-TUGUMUDA"]
    assert [k for k in restored.alarms.state.machines if "KALIGAWE" in k] == []
    out = Emitted()
    restored.tick(NOW + timedelta(hours=1), out)  # raised KeyError before
    # The removed camera's open alarm is cleared (nothing could clear it later), at its
    # last sample; the other closes as it would have.
    assert [(a.entity, a.state.value, a.reason.value) for a in out.alarms] == [
        ("CAM-KALIGAWE", "cleared", "silence"), ("CAM-TUGUMUDA", "cleared", "recovered")]  # fmt: skip


def test_former_state_format_keeps_open_incidents_and_quiet_cameras_are_evicted() -> None:
    old = {"offset": 3, "max_ts": T0, "open": {"CAM-KALIGAWE/accident": {
        "incident_id": "CAM-KALIGAWE/accident/1", "started": T0 - 60, "last": T0, "events": 3,
        "max_confidence": 0.9}}}  # fmt: skip
    part = CctvPartition(Settings(_env_file=None), load_rules(), load_cameras(), gazetteer(),  # type: ignore[call-arg]
                         orjson.dumps(old), wall=NOW.timestamp())  # fmt: skip
    out, _ = feed(part, [ev("CAM-KALIGAWE", "accident", 5, 0.9)], idle_s=11)
    assert incidents(out)["CAM-KALIGAWE/accident/1"][6] == 4
    out, _ = feed(part, [], idle_s=Settings(_env_file=None).entity_evict_after_s)  # type: ignore[call-arg]
    assert incidents(out)["CAM-KALIGAWE/accident/1"][8] == "closed"
    assert part.state.cameras == {} and part.alarms.state.machines == {}
