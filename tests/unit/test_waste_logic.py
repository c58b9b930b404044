from datetime import UTC, datetime
from itertools import pairwise

from connectors.publisher import encode_batch
from connectors.waste_simulator import WasteSimulator
from schemas.alarm_rules import load_rules
from schemas.geo import haversine_m
from schemas.settings import Settings
from schemas.waste import load_sites
from streams.pipeline import Emitted, Message
from streams.waste_logic import WastePartition

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
