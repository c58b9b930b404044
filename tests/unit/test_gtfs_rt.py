import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from google.transit import gtfs_realtime_pb2

from connectors.base import SourceError
from connectors.gtfs_rt import GtfsRtSource, parse_feed
from connectors.metrics import FETCH_ERRORS

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "gtfs-rt"


def feed(header_ts: int | None = 1_700_000_000) -> gtfs_realtime_pb2.FeedMessage:
    msg = gtfs_realtime_pb2.FeedMessage()
    msg.header.gtfs_realtime_version = "2.0"
    if header_ts is not None:
        msg.header.timestamp = header_ts
    return msg


def add(msg: gtfs_realtime_pb2.FeedMessage, entity_id: str, **kw: object) -> None:
    e = msg.entity.add()
    e.id = entity_id
    v = e.vehicle
    if kw.get("vid") is not None:
        v.vehicle.id = kw["vid"]  # type: ignore[assignment]
    if kw.get("label") is not None:
        v.vehicle.label = kw["label"]  # type: ignore[assignment]
    if kw.get("ts") is not None:
        v.timestamp = kw["ts"]  # type: ignore[assignment]
    if kw.get("position", True):
        v.position.latitude = -6.99
        v.position.longitude = 110.42
        if kw.get("speed") is not None:
            v.position.speed = kw["speed"]  # type: ignore[assignment]
    v.trip.route_id = "K1"


def test_vehicle_id_falls_back_to_label_then_entity_id() -> None:
    msg = feed()
    add(msg, "e1", vid="bus-1")
    add(msg, "e2", label="Label 2")
    add(msg, "e3")
    positions, rejects = parse_feed(msg.SerializeToString())
    assert [p.vehicle_id for p in positions] == ["bus-1", "Label 2", "e3"] and rejects == []


def test_timestamp_falls_back_to_the_header_and_speed_is_converted() -> None:
    msg = feed(1_700_000_000)
    add(msg, "e1", vid="a", ts=1_700_000_100, speed=10.0)
    add(msg, "e2", vid="b")
    positions, _ = parse_feed(msg.SerializeToString())
    assert positions[0].ts == 1_700_000_100 and positions[0].speed_kmh == pytest.approx(36.0)
    assert positions[1].ts == 1_700_000_000 and positions[1].speed_kmh is None


def test_unusable_entities_are_rejected_with_a_reason() -> None:
    msg = feed(None)
    add(msg, "e1", vid="a")  # no timestamp anywhere
    add(msg, "e2", vid="b", ts=1_700_000_000, position=False)
    positions, rejects = parse_feed(msg.SerializeToString())
    assert positions == []
    assert [r[0] for r in rejects] == ["no_timestamp", "no_position"]


def test_garbage_is_a_source_error() -> None:
    with pytest.raises(SourceError):
        parse_feed(b"\xff\xff\xff garbage")


@pytest.mark.parametrize(
    ("name", "vehicles"),
    [("mdv_bullrunner-vehicle-positions.pb", 10), ("mt_speedrt_vehiclePositions.pb", 11)],
)
def test_real_captures_decode(name: str, vehicles: int) -> None:
    positions, rejects = parse_feed((DATA / name).read_bytes())
    assert len(positions) == vehicles and rejects == []
    assert all(p.vehicle_id for p in positions)


def test_large_real_capture_keeps_what_it_can() -> None:
    positions, rejects = parse_feed((DATA / "gm_vehicle_positions.pb").read_bytes())
    assert len(positions) == 3517 and len(rejects) == 32
    assert {r[0] for r in rejects} == {"no_position"}


class _Feed(BaseHTTPRequestHandler):
    responses: list[tuple[int, bytes]] = []

    def do_GET(self) -> None:
        status, body = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _NoDeadLetters:
    async def dead_letter(self, raw: bytes, reason: str, detail: str, source: str) -> None:
        raise AssertionError(f"unexpected dead letter: {reason} {detail}")


async def test_polling_a_live_feed_skips_unchanged_snapshots_and_survives_errors() -> None:
    data = (DATA / "mdv_bullrunner-vehicle-positions.pb").read_bytes()
    _Feed.responses = [(200, data), (503, b"busy"), (200, data), (200, data)]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = FETCH_ERRORS.labels("gtfs-rt")._value.get()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/vehiclePositions.pb"
        source = GtfsRtSource(url=url, interval_s=0.01, max_polls=4)
        batches = [b async for b in source.batches(_NoDeadLetters())]  # type: ignore[arg-type]
    finally:
        server.shutdown()
    assert [len(b) for b in batches] == [10]  # the same snapshot is not published twice
    assert FETCH_ERRORS.labels("gtfs-rt")._value.get() == before + 1
