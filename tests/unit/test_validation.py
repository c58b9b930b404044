from datetime import UTC, datetime, timedelta

from schemas.deadletter import Reason
from schemas.settings import BoundingBox, Settings, parse_bbox
from schemas.transit import VehiclePosition
from streams.validation import check_position, decode_positions

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GOOD = b'{"vehicle_id":"K1-01","lat":-6.99,"lon":110.42,"timestamp":"2026-03-02T08:59:00Z"}'


def test_single_object_and_batches_decode() -> None:
    one, bad = decode_positions(GOOD)
    assert [p.vehicle_id for p in one] == ["K1-01"] and bad == []
    many, bad = decode_positions(b"[" + GOOD + b"," + GOOD + b"]")
    assert len(many) == 2 and bad == []


def test_each_bad_item_is_rejected_alone() -> None:
    good, bad = decode_positions(b"[" + GOOD + b', {"vehicle_id": "x", "lat": 91}]')
    assert len(good) == 1
    assert bad[0].reason is Reason.SCHEMA and bad[0].index == 1
    assert "lat" in bad[0].detail and "timestamp" in bad[0].detail


def test_broken_json_is_invalid_json() -> None:
    for raw in (b"{", b"[1,", b"", b"\xff\xfe"):
        good, bad = decode_positions(raw)
        assert good == [] and bad[0].reason is Reason.INVALID_JSON, raw


def test_naive_timestamps_are_refused() -> None:
    _, bad = decode_positions(
        b'{"vehicle_id":"a","lat":0,"lon":0,"timestamp":"2026-03-02T08:00:00"}'
    )
    assert bad and bad[0].reason is Reason.SCHEMA


def test_service_area_and_future_checks() -> None:
    area = parse_bbox("110.2,-7.2,110.6,-6.85")
    p = VehiclePosition(vehicle_id="a", lat=52.0, lon=4.9, timestamp=NOW)
    assert check_position(p, area, NOW, 300)[0] is Reason.OUTSIDE_SERVICE_AREA  # type: ignore[index]
    assert check_position(p, None, NOW, 300) is None
    ahead = VehiclePosition(
        vehicle_id="a", lat=-7.0, lon=110.4, timestamp=NOW + timedelta(minutes=10)
    )
    assert check_position(ahead, area, NOW, 300)[0] is Reason.FUTURE_TIMESTAMP  # type: ignore[index]


def test_service_area_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert Settings(_env_file=None).service_area == BoundingBox(  # type: ignore[call-arg]
        min_lon=110.2, min_lat=-7.2, max_lon=110.6, max_lat=-6.85
    )
    monkeypatch.setenv("SITROOM_SERVICE_AREA", "none")
    assert Settings().service_area is None
    monkeypatch.setenv("SITROOM_SERVICE_AREA", "4.7,52.2,5.1,52.5")
    assert Settings().service_area.contains(4.9, 52.35)  # type: ignore[union-attr]
