import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from google.transit import gtfs_realtime_pb2

from connectors.base import SourceError, run_source
from connectors.gtfs_rt import GtfsRtSource, parse_feed
from connectors.metrics import FETCH_ERRORS
from connectors.tally import NothingUsable
from schemas.transit import VehiclePosition
from tests.unit.helpers import RecordingPublisher

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
    parsed = parse_feed(msg.SerializeToString())
    positions, rejects = parsed.positions, parsed.rejects
    assert [p.vehicle_id for p in positions] == ["bus-1", "Label 2", "e3"] and rejects == []


def test_timestamp_falls_back_to_the_header_and_speed_is_converted() -> None:
    msg = feed(1_700_000_000)
    add(msg, "e1", vid="a", ts=1_700_000_100, speed=10.0)
    add(msg, "e2", vid="b")
    positions = parse_feed(msg.SerializeToString()).positions
    assert positions[0].ts == 1_700_000_100 and positions[0].speed_kmh == pytest.approx(36.0)
    assert positions[1].ts == 1_700_000_000 and positions[1].speed_kmh is None


def test_unusable_entities_are_rejected_with_a_reason() -> None:
    msg = feed(None)
    add(msg, "e1", vid="a")  # no timestamp anywhere
    add(msg, "e2", vid="b", ts=1_700_000_000, position=False)
    parsed = parse_feed(msg.SerializeToString())
    positions, rejects = parsed.positions, parsed.rejects
    assert positions == []
    assert [r[0] for r in rejects] == ["no_timestamp", "no_position"]


@pytest.mark.parametrize("data", [b"\xff\xff\xff garbage", b"", b"<html>502 Bad Gateway</html>"])
def test_what_is_not_a_feed_is_a_source_error(data: bytes) -> None:
    with pytest.raises(SourceError, match="not a GTFS-realtime FeedMessage"):
        parse_feed(data)


def _trip_updates_only() -> bytes:
    msg = feed()
    for i in range(3):
        e = msg.entity.add()
        e.id = f"tu{i}"
        e.trip_update.trip.trip_id = f"trip-{i}"
        stop = e.trip_update.stop_time_update.add()
        stop.stop_id, stop.arrival.delay = "S1", 60
    alert = msg.entity.add()
    alert.id = "a1"
    alert.alert.header_text.translation.add().text = "Detour"
    return msg.SerializeToString()


async def test_a_replay_of_trip_updates_says_what_it_held_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "tripupdates.pb"
    path.write_bytes(_trip_updates_only())
    publisher = RecordingPublisher()
    with pytest.raises(NothingUsable, match=r"3 trip updates, 1 alert and no vehicle position"):
        await run_source(GtfsRtSource(files=[path]), publisher)  # type: ignore[arg-type]
    assert publisher.tally.skipped == {"trip_update": 3, "alert": 1}


async def test_an_undecodable_file_is_dead_lettered_and_the_replay_fails(tmp_path: Path) -> None:
    bad = tmp_path / "error.pb"
    bad.write_bytes(b"<html>502 Bad Gateway</html>")
    good = DATA / "mdv_bullrunner-vehicle-positions.pb"
    publisher = RecordingPublisher()
    with pytest.raises(SourceError, match=r"1 of 2 file\(s\) undecodable: .*error.pb"):
        await run_source(GtfsRtSource(files=[bad, good]), publisher)  # type: ignore[arg-type]
    assert len(publisher.events) == 10  # what could be read was published
    assert [d[0] for d in publisher.dead] == ["undecodable_feed"]


@pytest.mark.parametrize(
    ("name", "vehicles"),
    [("mdv_bullrunner-vehicle-positions.pb", 10), ("mt_speedrt_vehiclePositions.pb", 11)],
)
def test_real_captures_decode(name: str, vehicles: int) -> None:
    parsed = parse_feed((DATA / name).read_bytes())
    positions, rejects = parsed.positions, parsed.rejects
    assert len(positions) == vehicles and rejects == []
    assert all(p.vehicle_id for p in positions)


def test_large_real_capture_keeps_what_it_can() -> None:
    parsed = parse_feed((DATA / "gm_vehicle_positions.pb").read_bytes())
    positions, rejects = parsed.positions, parsed.rejects
    assert parsed.held == {"vehicle": 3517, "vehicle_without_position": 32}
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


async def poll(
    responses: list[tuple[int, bytes]],
) -> tuple[list[Sequence[VehiclePosition]], RecordingPublisher]:
    """Poll a local feed that answers ``responses`` in turn, once per response."""
    _Feed.responses = responses
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/vehiclePositions.pb"
        source = GtfsRtSource(url=url, interval_s=0.01, max_polls=len(responses))
        publisher = RecordingPublisher()
        batches = [b async for b in source.batches(publisher)]  # type: ignore[arg-type]
    finally:
        server.shutdown()
    return batches, publisher  # type: ignore[return-value]


async def test_polling_a_live_feed_skips_unchanged_snapshots_and_survives_errors() -> None:
    data = (DATA / "mdv_bullrunner-vehicle-positions.pb").read_bytes()
    before = FETCH_ERRORS.labels("gtfs-rt")._value.get()
    batches, publisher = await poll([(200, data), (503, b"busy"), (200, data), (200, data)])
    assert [len(b) for b in batches] == [10]  # the same snapshot is not published twice
    assert FETCH_ERRORS.labels("gtfs-rt")._value.get() == before + 1
    assert publisher.tally.skipped == {"unchanged_feed": 20} and publisher.dead == []


def _snapshot(header_ts: int, vehicles: list[str]) -> bytes:
    msg = feed(header_ts)
    for vid in vehicles:
        add(msg, vid, vid=vid, ts=header_ts)
    return msg.SerializeToString()


async def test_a_snapshot_is_new_when_its_header_timestamp_is() -> None:
    # The same snapshot served with its entities in another order is not new; a new one
    # whose first bytes match the old one is.
    first = _snapshot(1_700_000_000, ["a", "b"])
    reordered = _snapshot(1_700_000_000, ["b", "a"])
    newer = _snapshot(1_700_000_030, ["a", "b"])
    assert first != reordered and first[:8] == newer[:8]
    batches, publisher = await poll([(200, first), (200, reordered), (200, newer)])
    assert [[p.ts for p in b] for b in batches] == [[1_700_000_000] * 2, [1_700_000_030] * 2]
    assert publisher.tally.skipped == {"unchanged_feed": 2}
