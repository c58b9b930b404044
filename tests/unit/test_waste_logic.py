from datetime import UTC, datetime
from itertools import pairwise

import orjson

from connectors.publisher import encode_batch
from connectors.waste_simulator import WasteSimulator
from schemas.alarm_rules import load_rules
from schemas.deadletter import Reason
from schemas.geo import haversine_m
from schemas.settings import Settings
from schemas.waste import load_sites
from streams.pipeline import Emitted, Message
from streams.waste_logic import WastePartition
from tests.unit.stream_orders import last_versions

START = datetime(2026, 3, 2, 22, 0, tzinfo=UTC).timestamp()  # 05:00 WIB
NOW = datetime.fromtimestamp(START + 86400 * 2, UTC)


def run(sim: WasteSimulator, seconds: float) -> tuple[WastePartition, Emitted]:
    part = WastePartition(Settings(_env_file=None), load_rules(), load_sites())  # type: ignore[call-arg]
    out = Emitted()
    t, offset = sim.start, 0
    while t - sim.start < seconds:
        _, rejected = part.handle(
            Message("waste.truck-positions", 0, offset, None, encode_batch(sim.tick(t))), NOW, out
        )
        assert rejected == []
        t, offset = t + sim.interval_s, offset + 1
    return part, out


def test_trips_to_the_tpa_geofence_events_and_daily_kilometres() -> None:
    sim = WasteSimulator(load_sites(), seed=1, trucks=4, start=START, realtime=False)
    _, out = run(sim, 4 * 3600)
    daily = {
        r[0]: r for r in out.tables["waste_truck_daily"][1]
    }  # last row per truck wins, as in ClickHouse
    events = out.tables["waste_geofence_events"][1]
    for truck, legs in sim.plans.items():
        if truck in {b.truck_id for b in sim.truth}:
            continue
        assert daily[truck][3] == 1  # one trip to TPA Jatibarang
        route_km = (
            sum(
                haversine_m(a.site.lat, a.site.lon, b.site.lat, b.site.lon)
                for a, b in pairwise(legs)
            )
            / 1000
        )
        assert abs(daily[truck][2] - route_km) < 0.05 * route_km
        entered = [e[2] for e in events if e[0] == truck and e[4] == "enter"]
        assert entered[0] != "TPA-JATIBARANG" and "TPA-JATIBARANG" in entered
    assert str(daily[next(iter(daily))][1]) == "2026-03-03"  # the local (WIB) day


def test_a_broken_down_truck_raises_an_idle_alarm_that_escalates_and_clears() -> None:
    sim = WasteSimulator(load_sites(), seed=1, trucks=2, start=START, realtime=False)
    _, out = run(sim, 3 * 3600)
    idle = [(a.entity, a.state.value, a.level) for a in out.alarms if a.kind == "truck_idle"]
    truck = sim.truth[0].truck_id
    assert idle == [
        (truck, "raised", "idle"),
        (truck, "updated", "idle long"),
        (truck, "cleared", "normal"),
    ]


# --- event time per truck -------------------------------------------------------------

MIDNIGHT = datetime(2026, 3, 3, 17, 0, tzinfo=UTC).timestamp()  # 00:00 WIB, 4 March
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
WALL = datetime.fromtimestamp(MIDNIGHT + 3600, UTC)


def fix(ts: float, truck: str = "DLH-01", step: float | None = None) -> dict:  # type: ignore[type-arg]
    """A truck driving east at about 24 km/h, away from every site."""
    n = (ts - MIDNIGHT) / 30 if step is None else step
    return {"truck_id": truck, "lat": -6.99, "lon": 110.38 + n * 0.0018,
            "timestamp": datetime.fromtimestamp(ts, UTC).isoformat(), "speed_kmh": 24.0}  # fmt: skip


class Feed:
    def __init__(self, part: WastePartition | None = None) -> None:
        self.part = part or WastePartition(SETTINGS, load_rules(), load_sites(), wall=0.0)
        self.out = Emitted()
        self.rejected: list = []  # type: ignore[type-arg]

    def send(self, *items: dict, wall: datetime = WALL) -> None:  # type: ignore[type-arg]
        offset = self.part.offset("w") + 1
        msg = Message("waste.truck-positions", 0, offset, None, orjson.dumps(list(items)))
        self.rejected += self.part.handle(msg, wall, self.out)[1]

    def tick(self, wall: datetime) -> bool:
        return self.part.tick(wall, self.out)

    def daily(self) -> dict[tuple[str, str], tuple]:  # type: ignore[type-arg]
        rows = self.out.tables["waste_truck_daily"][1]
        return {(k[0], str(k[1])): r for k, r in last_versions(rows, lambda r: (r[0], r[1]), lambda r: r[6]).items()}  # type: ignore[index]  # fmt: skip


def test_a_late_fix_around_wib_midnight_corrects_yesterday_and_never_zeroes_it() -> None:
    feed = Feed()
    horizon = int(SETTINGS.correction_horizon_s)
    for ts in range(int(MIDNIGHT) - 600, int(MIDNIGHT) + horizon - 60, 30):
        feed.send(fix(ts))
    before = feed.daily()
    yesterday, today = before[("DLH-01", "2026-03-03")], before[("DLH-01", "2026-03-04")]
    assert yesterday[4] == 20 and yesterday[2] > 2  # 20 fixes, about 4 km before midnight
    # A fix from 15 s before midnight arrives minutes late, then the day goes on.
    feed.send(fix(MIDNIGHT - 15, step=-0.5))
    feed.send(fix(MIDNIGHT + horizon))
    feed.tick(datetime.fromtimestamp(MIDNIGHT + 86400 * 2, UTC))
    after = feed.daily()
    assert feed.rejected == []
    late_day = after[("DLH-01", "2026-03-03")]
    assert late_day[2:5] == (yesterday[2], yesterday[3], 21)  # one more fix, same km
    assert late_day[6] > yesterday[6]  # a higher version replaces the earlier row
    assert after[("DLH-01", "2026-03-04")][4] == today[4] + 1 + 1  # plus the last two held


def test_a_fix_whose_day_is_past_the_correction_horizon_is_dead_lettered_late() -> None:
    feed = Feed()
    for ts in range(int(MIDNIGHT) - 300, int(MIDNIGHT + SETTINGS.correction_horizon_s) + 60, 30):
        feed.send(fix(ts))
    feed.send(fix(MIDNIGHT - 15, step=-0.5))  # its day closed more than the horizon ago
    assert [r.reason for r in feed.rejected] == [Reason.LATE]
    assert feed.daily()[("DLH-01", "2026-03-03")][4] == 10


def test_shuffles_within_the_lateness_give_the_same_rows() -> None:
    times = list(range(int(MIDNIGHT) - 300, int(MIDNIGHT) + 300, 5))
    ordered, shuffled = Feed(), Feed()
    for ts in times:
        ordered.send(fix(ts))
    swapped = times[:]
    for i in range(0, len(swapped) - 1, 2):
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    for ts in swapped:
        shuffled.send(fix(ts), fix(ts))  # and every fix twice
    end = datetime.fromtimestamp(MIDNIGHT + 86400, UTC)
    ordered.tick(end), shuffled.tick(end)
    assert ordered.daily() == shuffled.daily()
    assert shuffled.rejected == []


def test_a_quiet_truck_is_written_then_evicted_with_its_alarm_machine() -> None:
    feed = Feed()
    stopped = [fix(MIDNIGHT + 60 * m, step=0) | {"speed_kmh": 0.0} for m in range(10)]
    feed.send(*stopped)
    # 9 minutes stood is normal: a normal sample leaves no alarm machine behind.
    assert "truck_idle/DLH-01" not in feed.part.alarms.state.machines
    assert feed.daily()[("DLH-01", "2026-03-04")][4] == 9  # the last fix is still held
    almost = WALL.timestamp() + SETTINGS.entity_evict_after_s - 1
    feed.tick(datetime.fromtimestamp(almost, UTC))
    assert list(feed.part.state.trucks) == ["DLH-01"]
    assert feed.tick(datetime.fromtimestamp(almost + 1, UTC))
    assert feed.part.state.trucks == {} and feed.part.alarms.state.machines == {}
    assert feed.daily()[("DLH-01", "2026-03-04")][4] == 10


def test_restored_state_drops_removed_sites_and_keeps_the_former_running_day() -> None:
    old = {"offset": 4, "trucks": {"DLH-01": {
        "anchor": {"ts": MIDNIGHT + 60, "lat": -6.99, "lon": 110.38}, "day": "2026-03-04",
        "km": 12.5, "tpa_trips": 1, "fixes": 300, "inside": ["GONE", "TPA-JATIBARANG"],
    }}}  # fmt: skip
    part = WastePartition(
        SETTINGS, load_rules(), load_sites(), orjson.dumps(old), wall=MIDNIGHT + 60
    )
    assert part.state.trucks["DLH-01"].inside == ["TPA-JATIBARANG"]
    feed = Feed(part)
    feed.send(fix(MIDNIGHT + 90, step=1), wall=datetime.fromtimestamp(MIDNIGHT + 90, UTC))
    feed.tick(datetime.fromtimestamp(MIDNIGHT + 86400, UTC))
    row = feed.daily()[("DLH-01", "2026-03-04")]
    assert row[3:5] == (1, 301) and row[2] > 12.5 and row[6] == 1
