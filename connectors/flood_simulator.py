"""A deterministic simulator of Semarang's flood gauges, publishing over MQTT.

Seeded: levels follow a tide (coastal gauges and polders) and noise around a dry-season
base; one flood event makes a river rise through Waspada and Siaga, hold and recede; the
rain gauge upstream reports the storm; citizens report standing water nearby; a station
falls silent; and now and then a gauge sends garbage, as real telemetry does. Each station
reports at its registry cadence (``cadence_s``) or the interval, whichever is longer. The
event script is in :attr:`FloodSimulator.truth`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt
import orjson
from pydantic import BaseModel

from connectors.publisher import KafkaPublisher
from schemas.catalog import FLOOD_REPORTS
from schemas.flood import FloodReport, GaugeKind, Station, StationRegistry
from schemas.geo import offset_m

TIDE_PERIOD_S = 12.42 * 3600
COASTAL = ("MUARA", "POLDER", "BEROK", "TERBOYO", "SAWAHBESAR", "KALIGAWE")
GARBAGE = b"ERR sensor timeout"


@dataclass(frozen=True)
class FloodEvent:
    station_id: str
    start: float  # rise begins
    peak_cm: float
    rise_cm_per_min: float = 6.0
    hold_s: float = 900.0
    fall_cm_per_min: float = 2.0


@dataclass(frozen=True)
class Publication:
    topic: str
    payload: bytes


def report_key(event: BaseModel) -> str:
    assert isinstance(event, FloodReport)
    return event.report_id


class FloodSimulator:
    name = "flood-simulator"

    def __init__(
        self,
        registry: StationRegistry,
        seed: int = 7,
        interval_s: float = 60.0,
        start: float | None = None,
        event_delay_s: float = 60.0,
        silent_station: str | None = "SRINGIN-TERBOYO",
        silent_after_s: float = 1800.0,
        garbage_every: int = 250,
        rise_cm_per_min: float = 6.0,
        prefix: str = "semarang",
    ) -> None:
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.stations = registry.stations
        self.interval_s = interval_s
        self.start = time.time() if start is None else start
        self.silent_station = silent_station
        self.silent_after_s = silent_after_s
        self.garbage_every = garbage_every
        self.sent = 0
        target = next(s for s in self.stations if s.id == "BKB-SIMONGAN")
        assert target.siaga is not None and target.awas is not None
        self.truth = [
            FloodEvent(
                target.id,
                self.start + event_delay_s,
                (target.siaga + target.awas) / 2,
                rise_cm_per_min,
            )
        ]
        self.base = {
            s.id: (s.waspada or 100.0) * self.rng.uniform(0.35, 0.5) for s in self.stations
        }
        self.reported: set[int] = set()
        # The cadence slot each station last reported in: a station reports at its own
        # cadence (hourly gauges once an hour), never more often than the interval.
        self.slot: dict[str, int] = {}

    def level(self, station: Station, t: float) -> float:
        value = self.base[station.id]
        if any(tag in station.id for tag in COASTAL):
            value += 25.0 * math.sin(2 * math.pi * (t - self.start) / TIDE_PERIOD_S)
        for ev in self.truth:
            if ev.station_id != station.id or t < ev.start:
                continue
            rise = ev.peak_cm - value
            t_peak = ev.start + rise / ev.rise_cm_per_min * 60
            if t < t_peak:
                value += (t - ev.start) / 60 * ev.rise_cm_per_min
            elif t < t_peak + ev.hold_s:
                value = ev.peak_cm
            else:
                value = max(value, ev.peak_cm - (t - t_peak - ev.hold_s) / 60 * ev.fall_cm_per_min)
        return round(
            min(max(value + self.rng.gauss(0, 1.5), station.min_value), station.max_value), 1
        )

    def rain(self, t: float) -> float:
        storm = any(ev.start - 1800 <= t <= ev.start + 1800 for ev in self.truth)
        return round(
            self.rng.uniform(3.0, 12.0) if storm else max(0.0, self.rng.gauss(0.1, 0.3)), 1
        )

    def tick(self, t: float) -> Iterator[Publication]:
        stamp = datetime.fromtimestamp(t, UTC).isoformat()
        for station in self.stations:
            if station.id == self.silent_station and t - self.start >= self.silent_after_s:
                continue
            slot = int((t - self.start) // station.cadence_s)
            if self.slot.get(station.id) == slot:
                continue
            self.slot[station.id] = slot
            self.sent += 1
            topic = f"{self.prefix}/flood/{station.id}/{station.kind.value}"
            if self.garbage_every and self.sent % self.garbage_every == 0:
                yield Publication(topic, GARBAGE)
                continue
            value = self.level(station, t) if station.kind is GaugeKind.LEVEL else self.rain(t)
            yield Publication(topic, orjson.dumps({"value": value, "timestamp": stamp}))

    def reports(self, t: float) -> list[FloodReport]:
        """Citizens start reporting a few minutes into the event, near the river."""
        out = []
        for n, ev in enumerate(self.truth):
            if t >= ev.start + 300 and n not in self.reported:
                self.reported.add(n)
                station = next(s for s in self.stations if s.id == ev.station_id)
                for _ in range(3):
                    lat, lon = offset_m(
                        station.lat,
                        station.lon,
                        self.rng.uniform(-300, 300),
                        self.rng.uniform(-300, 300),
                    )
                    out.append(FloodReport(
                        report_id=str(uuid.UUID(int=self.rng.getrandbits(128))), lat=round(lat, 6), lon=round(lon, 6),
                        depth_cm=round(self.rng.uniform(15, 50)), timestamp=datetime.fromtimestamp(t, UTC),
                        note="air masuk rumah", source=self.name,
                    ))  # fmt: skip
        return out

    async def run(
        self, mqtt_host: str, mqtt_port: int, publisher: KafkaPublisher | None,
        duration_s: float | None = None, realtime: bool = True,
    ) -> int:  # fmt: skip
        """Publish until ``duration_s`` of simulated time has passed; return messages sent."""
        t, sent = self.start, 0
        async with aiomqtt.Client(
            mqtt_host, mqtt_port, identifier=f"sitroom-{self.name}-{uuid.uuid4().hex[:6]}"
        ) as client:
            while duration_s is None or t - self.start < duration_s:
                if realtime and (delay := t - time.time()) > 0:
                    await asyncio.sleep(delay)
                for pub in self.tick(t):
                    await client.publish(pub.topic, pub.payload, qos=1)
                    sent += 1
                reports = self.reports(t)
                if reports and publisher is not None:
                    await publisher.publish(FLOOD_REPORTS, reports, report_key)
                t += self.interval_s
        return sent
