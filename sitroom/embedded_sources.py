"""The connectors `sitroom up` runs next to the worker: a seeded simulator per domain and
the MQTT bridge, so one command shows every domain of the room working."""

from __future__ import annotations

import time

from connectors.base import Source
from connectors.brt_simulator import BrtSimulator
from connectors.cctv_simulator import CctvSimulator
from connectors.mqtt_bridge import MqttBridge, flood_route
from connectors.price_simulator import PriceSimulator
from connectors.procurement_simulator import ProcurementSimulator
from connectors.traffic_simulator import TrafficSimulator
from connectors.waste_simulator import WasteSimulator
from schemas.cctv import load_cameras
from schemas.prices import load_commodities, load_markets
from schemas.settings import Settings
from schemas.traffic import load_segments
from schemas.waste import load_sites
from sitroom import reports_cmd


def embedded_sources(settings: Settings) -> list[Source]:
    """Every Kafka-publishing connector of the embedded run (the flood gauges' simulator
    speaks MQTT and runs on its own)."""
    seed = settings.sim_seed
    return [
        BrtSimulator(
            seed=seed,
            buses_per_corridor=settings.sim_buses_per_corridor,
            interval_s=settings.sim_interval_s,
        ),
        CctvSimulator(load_cameras(), seed=seed),
        WasteSimulator(load_sites(), seed=seed),
        # A quarter hour back-filled: the room sees full 5-minute windows from the start.
        TrafficSimulator(load_segments(), seed=seed, start=time.time() - 900),
        PriceSimulator(load_markets(), load_commodities(), seed=seed),
        ProcurementSimulator(seed=seed, backfill=40),
        reports_cmd.simulator(settings),
        MqttBridge(
            settings.mqtt_url,
            flood_route(settings.mqtt_prefix),
            client_id=settings.mqtt_client_id,
        ),
    ]
