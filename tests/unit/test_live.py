import orjson

from api.routers.live import STREAMS, events_of


def test_a_batch_becomes_one_event_per_item_with_a_resumable_id() -> None:
    value = orjson.dumps([{"vehicle_id": "K1-01"}, {"vehicle_id": "K1-02"}])
    events = events_of("transit.vehicle-positions", 3, 41, value)
    assert [orjson.loads(e.data)["vehicle_id"] for e in events] == ["K1-01", "K1-02"]
    assert [e.id for e in events] == [
        "transit.vehicle-positions:3:41:0",
        "transit.vehicle-positions:3:41:1",
    ]
    assert {e.event for e in events} == {"transit.vehicle-positions"}


def test_alarms_filter_by_domain_and_garbage_is_skipped() -> None:
    alarm = orjson.dumps({"id": "a", "domain": "flood"})
    assert len(events_of("sitroom.alarms", 0, 1, alarm, domain="flood")) == 1
    assert events_of("sitroom.alarms", 0, 1, alarm, domain="transit") == []
    assert events_of("sitroom.alarms", 0, 2, b"\x00not json") == []


def test_personal_and_internal_topics_are_never_offered() -> None:
    offered = {t.name for topics in STREAMS.values() for t in topics}
    assert not offered & {"reports.contacts", "sitroom.alarm-commands", "sitroom.deadletter"}
