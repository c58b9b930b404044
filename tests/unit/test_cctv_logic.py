from datetime import UTC, datetime

import orjson

from connectors.cctv_simulator import CctvSimulator
from schemas.alarm_rules import load_rules
from schemas.cctv import load_cameras
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.spatial import gazetteer
from streams.cctv_logic import CctvPartition
from streams.pipeline import Emitted, Message

T0 = 1_780_000_000.0
NOW = datetime.fromtimestamp(T0 + 86400, UTC)


def ev(camera: str, kind: str, minute: float, confidence: float) -> dict:  # type: ignore[type-arg]
    return {"camera_id": camera, "kind": kind, "confidence": confidence,
            "timestamp": datetime.fromtimestamp(T0 + minute * 60, UTC).isoformat()}  # fmt: skip


def feed(part: CctvPartition, items: list[dict], idle_s: float = 0.0) -> tuple[Emitted, list]:  # type: ignore[type-arg]
    out, rejected = Emitted(), []
    for offset, item in enumerate(items, start=part.offset("c") + 1):
        _, rej = part.handle(Message("cctv.events", 0, offset, None, orjson.dumps(item)), NOW, out)
        rejected += rej
    part.tick(NOW, idle_s, out)
    return out, rejected


def partition() -> CctvPartition:
    return CctvPartition(Settings(_env_file=None), load_rules(), load_cameras(), gazetteer())  # type: ignore[call-arg]


def test_events_within_the_gap_are_one_incident_and_alarms_follow_confidence() -> None:
    part = partition()
    smoke = [ev("CAM-PASARJOHAR", "fire_smoke", m, c) for m, c in [(0, 0.65), (3, 0.7), (6, 0.9)]]
    later = [ev("CAM-PASARJOHAR", "fire_smoke", 30, 0.7)]  # a new incident: past the 10-minute gap
    out, rejected = feed(part, smoke + later)
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
    )
    assert "cctv_incidents" not in out.tables and out.alarms == []
    assert len(out.tables["cctv_events"][1]) == 2


def test_quiet_cameras_close_their_incidents_on_the_event_clock() -> None:
    part = partition()
    out, _ = feed(part, [ev("CAM-KALIGAWE", "accident", 0, 0.9)])
    assert [a.state.value for a in out.alarms] == ["raised"]
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
