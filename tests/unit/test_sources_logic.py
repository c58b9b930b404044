from datetime import UTC, datetime, timedelta

from schemas.alarm_rules import load_rules
from schemas.alarms import AlarmState, Severity
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.sources import ConnectorState, SourceHeartbeat
from streams.pipeline import Emitted, Message
from streams.sources_logic import SourcesPartition

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
SETTLE_S = Settings(_env_file=None).window_allowed_lateness_s + 1  # type: ignore[call-arg]


def beat(at_s: float, last_event_s: float | None, state: str = "running", instance: str = "h:1",
         connector: str = "gtfs-rt", started_s: float = 0.0) -> SourceHeartbeat:  # fmt: skip
    return SourceHeartbeat(
        connector=connector,
        instance=instance,
        at=T0 + timedelta(seconds=at_s),
        state=ConnectorState(state),
        topics=["transit.vehicle-positions"],
        events_total=10,
        last_event_at=None if last_event_s is None else T0 + timedelta(seconds=last_event_s),
        started_at=T0 + timedelta(seconds=started_s),
    )


class Feed:
    def __init__(self) -> None:
        self.part = SourcesPartition(Settings(_env_file=None), load_rules())  # type: ignore[call-arg]
        self.offset = 0

    def send(self, hb: SourceHeartbeat, now_s: float) -> Emitted:
        out = Emitted()
        self.offset += 1
        msg = Message(
            "sitroom.source-heartbeats", 0, self.offset, None, hb.model_dump_json().encode()
        )
        _, rejected = self.part.handle(msg, T0 + timedelta(seconds=now_s), out)
        assert not rejected
        # A moment past the lateness: the beat is judged in its own time.
        self.part.tick(T0 + timedelta(seconds=now_s + SETTLE_S), out)
        return out

    def tick(self, now_s: float) -> Emitted:
        out = Emitted()
        self.part.tick(T0 + timedelta(seconds=now_s), out)
        return out


def test_a_quiet_source_with_a_live_connector_raises_then_escalates_then_clears() -> None:
    f = Feed()
    assert not f.send(beat(15, 10), 15).alarms
    assert not f.tick(129).alarms  # 119 s of silence, limit 120
    (raised,) = f.send(beat(135, 10), 135).alarms
    assert raised.kind == "source_silent" and raised.entity == "gtfs-rt"
    assert raised.state is AlarmState.RAISED and raised.severity is Severity.WARNING
    assert raised.context["connector_alive"] is True
    (worse,) = f.send(beat(615, 10), 615).alarms  # 605 s > 5 x 120
    assert worse.severity is Severity.CRITICAL
    (cleared,) = f.send(beat(630, 628), 630).alarms
    assert cleared.state is AlarmState.CLEARED


def test_a_connector_that_died_is_silent_and_said_to_be_lost() -> None:
    f = Feed()
    f.send(beat(15, 15), 15)
    (raised,) = f.tick(200).alarms  # no heartbeat since 15 s: the process is gone
    assert raised.context["connector_alive"] is False
    assert raised.context["connector_state"] == "lost"


def test_a_finished_replay_is_quiet_on_purpose_and_clears_its_alarm() -> None:
    f = Feed()
    f.send(beat(15, 5, connector="price-replay"), 15)
    assert f.tick(200).alarms
    (cleared,) = f.send(beat(201, 5, state="finished", connector="price-replay"), 201).alarms
    assert cleared.state is AlarmState.CLEARED
    assert not f.tick(5000).alarms


def test_a_restarted_connector_is_judged_by_its_newest_instance() -> None:
    f = Feed()
    f.send(beat(15, 10, state="finished", instance="h:1"), 15)
    assert not f.tick(1000).alarms
    f.send(beat(1005, None, instance="h:2", started_s=1000), 1005)  # started, nothing yet
    assert not f.tick(1100).alarms
    (raised,) = f.tick(1121).alarms
    assert raised.context["silent_s"] == 121.0


def test_per_connector_limits_and_stale_beats() -> None:
    f = Feed()
    f.send(beat(15, 10, connector="flood-simulator"), 15)
    assert not f.tick(3600).alarms  # reports come when it floods: limit 1 day
    f.send(beat(30, 30), 30)
    late = f.send(beat(20, 5), 40)  # an older beat delivered late changes nothing
    assert not late.alarms
    assert (
        f.part.state.connectors["gtfs-rt"]["h:1"].last_event
        == (T0 + timedelta(seconds=30)).timestamp()
    )


def test_state_survives_a_checkpoint_and_future_beats_are_dead_lettered() -> None:
    f = Feed()
    f.send(beat(15, 10), 15)
    assert f.tick(200).alarms
    restored = SourcesPartition(Settings(_env_file=None), load_rules(), f.part.dumps())  # type: ignore[call-arg]
    out = Emitted()
    restored.tick(T0 + timedelta(seconds=210), out)
    assert not out.alarms  # still open, not raised twice
    msg = Message(
        "sitroom.source-heartbeats", 0, 99, None, beat(10_000, 10).model_dump_json().encode()
    )
    _, rejected = restored.handle(msg, T0 + timedelta(seconds=220), out)
    assert rejected[0].reason is Reason.FUTURE_TIMESTAMP


def test_lost_and_stopped_instances_are_forgotten_but_the_newest_stays() -> None:
    from streams.sources_logic import FORGET_AFTER_S

    f = Feed()
    # Three restarts of one connector: h:1 was killed (never said "stopped"), h:2 stopped,
    # h:3 is the newest and was killed too.
    f.send(beat(15, 10, instance="h:1"), 15)
    f.send(beat(115, 110, state="stopped", instance="h:2", started_s=100), 115)
    f.send(beat(215, 210, instance="h:3", started_s=200), 215)
    instances = f.part.state.connectors["gtfs-rt"]
    assert set(instances) == {"h:1", "h:2", "h:3"}
    f.tick(15 + FORGET_AFTER_S)  # h:1's last beat is exactly the limit old: kept
    assert set(instances) == {"h:1", "h:2", "h:3"}
    out = Emitted()
    assert f.part.tick(T0 + timedelta(seconds=216 + FORGET_AFTER_S), out) is True
    # All three are a day silent; the newest stays so the connector is still judged.
    assert set(instances) == {"h:3"}
    assert f.part.alarms.state.machines["source_silent/gtfs-rt"].level > 0
    f.tick(10 * FORGET_AFTER_S)
    assert set(instances) == {"h:3"}


def test_state_from_before_the_beat_clocks_ticks_and_checkpoints_round_trip() -> None:
    """A connector restored without a clock gets an empty one, which must encode and load
    again (a clock starting at -inf encoded as JSON null and could not be read back)."""
    import orjson

    old = {"offset": 4, "connectors": {"gtfs-rt": {"h:1": {
        "state": "running", "started": T0.timestamp(), "heartbeat": T0.timestamp() + 15,
        "last_event": T0.timestamp() + 10}}}}  # fmt: skip
    part = SourcesPartition(Settings(_env_file=None), load_rules(), orjson.dumps(old))  # type: ignore[call-arg]
    part.tick(T0 + timedelta(seconds=60), Emitted())
    again = SourcesPartition(Settings(_env_file=None), load_rules(), part.dumps())  # type: ignore[call-arg]
    assert again.state.clocks["gtfs-rt"].max_ts is None and again.offset("h") == 4
