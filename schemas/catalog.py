"""The topic catalog: every Kafka topic sitroom owns, with its key, partitions and owner."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from schemas.alarms import Alarm, AlarmCommand
from schemas.cctv import CameraEvent
from schemas.flood import FloodReport, GaugeReading
from schemas.prices import PriceObservation
from schemas.procurement import TenderEvent
from schemas.reports import ReportContact, ReportEvent
from schemas.sources import SourceHeartbeat
from schemas.traffic import TrafficObservation
from schemas.transit import VehiclePosition
from schemas.waste import TruckPosition

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    partitions: int
    retention_ms: int
    department: str
    schema: type[BaseModel] | None
    description: str
    # Sensors and vehicles: consumed in large batches off faust's per-message path
    # (streams/batch_consumer.py); department topics stay on faust agents.
    high_rate: bool = False

    def configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms)}


VEHICLE_POSITIONS = TopicSpec(
    name="transit.vehicle-positions",
    key="vehicle_id (a message may hold a batch of one partition's vehicles)",
    partitions=6,
    retention_ms=7 * DAY_MS,
    department="Dinas Perhubungan / BLU Trans Semarang",
    schema=VehiclePosition,
    description="GPS fixes of buses: one position or a JSON array of positions per message",
    high_rate=True,
)
GAUGE_READINGS = TopicSpec(
    name="flood.gauge-readings",
    key="station_id",
    partitions=1,
    retention_ms=30 * DAY_MS,
    department="Dinas Pekerjaan Umum (Sumber Daya Air) / BPBD",
    schema=GaugeReading,
    description="water-level and rain gauge readings, bridged from MQTT semarang/flood/<station>/<kind>",
    high_rate=True,
)
FLOOD_REPORTS = TopicSpec(
    name="flood.citizen-reports",
    key="report_id",
    partitions=1,
    retention_ms=90 * DAY_MS,
    department="BPBD / Lapor Hendi",
    schema=FloodReport,
    description="citizens' flood reports (point, depth, time) from the API and other apps",
)
TRAFFIC_OBSERVATIONS = TopicSpec(
    name="traffic.observations",
    key="segment_id",
    partitions=3,
    retention_ms=30 * DAY_MS,
    department="Dinas Perhubungan (ATCS)",
    schema=TrafficObservation,
    description="detector/probe counts and speeds per road segment; one object or an array",
    high_rate=True,
)
CAMERA_EVENTS = TopicSpec(
    name="cctv.events",
    key="camera_id",
    partitions=3,
    retention_ms=30 * DAY_MS,
    department="Diskominfo / Satpol PP",
    schema=CameraEvent,
    description="video analytics events of the city's cameras; one object or an array",
    high_rate=True,
)
TRUCK_POSITIONS = TopicSpec(
    name="waste.truck-positions",
    key="truck_id",
    partitions=3,
    retention_ms=30 * DAY_MS,
    department="Dinas Lingkungan Hidup (DLH)",
    schema=TruckPosition,
    description="GPS fixes of garbage trucks; one object or an array",
    high_rate=True,
)
# Markets x commodities per day is a tiny volume: one partition lets one processor see every
# market of a city (for the city median and for market silence).
PRICE_OBSERVATIONS = TopicSpec(
    name="prices.observations",
    key="commodity_id",
    partitions=1,
    retention_ms=90 * DAY_MS,
    department="Dinas Perdagangan / TPID (Tim Pengendalian Inflasi Daerah)",
    schema=PriceObservation,
    description="staple-food price observations (market, commodity, market day); one object or an array",
)
REPORT_EVENTS = TopicSpec(
    name="reports.events",
    key="report_id",
    partitions=3,
    retention_ms=365 * DAY_MS,
    department="Diskominfo (Lapor Hendi) / every OPD",
    schema=ReportEvent,
    description="citizen reports' lifecycle: received, assigned, in_progress, resolved, rejected",
)
REPORT_CONTACTS = TopicSpec(
    name="reports.contacts",
    key="report_id",
    partitions=3,
    retention_ms=30 * DAY_MS,
    department="Diskominfo (Lapor Hendi)",
    schema=ReportContact,
    description="reporters' contacts (personal data): kept apart from the report; analysts get no access",
)
TENDER_EVENTS = TopicSpec(
    name="procurement.tender-events",
    key="agency_id (one processor sees all of an agency's tenders)",
    partitions=3,
    retention_ms=365 * DAY_MS,
    department="Bagian Pengadaan Barang/Jasa (UKPBJ / LPSE Kota Semarang)",
    schema=TenderEvent,
    description="tender lifecycle: announced, bid, awarded, contract; one object or an array",
)
ALARMS = TopicSpec(
    name="sitroom.alarms",
    key="alarm id",
    partitions=3,
    retention_ms=30 * DAY_MS,
    department="Situation room",
    schema=Alarm,
    description="every alarm transition (raised, updated, cleared) of every domain",
)
ALARM_COMMANDS = TopicSpec(
    name="sitroom.alarm-commands",
    key="alarm id",
    partitions=1,
    retention_ms=30 * DAY_MS,
    department="Situation room",
    schema=AlarmCommand,
    description="acknowledge/clear commands given through the API; every worker reads all",
)
SOURCE_HEARTBEATS = TopicSpec(
    name="sitroom.source-heartbeats",
    key="connector",
    partitions=1,
    retention_ms=1 * DAY_MS,
    department="Situation room",
    schema=SourceHeartbeat,
    description="every connector's liveness and last-event time, every few seconds",
)
DEAD_LETTER = TopicSpec(
    name="sitroom.deadletter",
    key="original key",
    partitions=1,
    retention_ms=30 * DAY_MS,
    department="Situation room",
    schema=None,
    description="rejected events: original bytes, reason and source in the headers",
)

CATALOG: tuple[TopicSpec, ...] = (
    VEHICLE_POSITIONS,
    GAUGE_READINGS,
    FLOOD_REPORTS,
    TRAFFIC_OBSERVATIONS,
    CAMERA_EVENTS,
    TRUCK_POSITIONS,
    PRICE_OBSERVATIONS,
    TENDER_EVENTS,
    REPORT_EVENTS,
    REPORT_CONTACTS,
    ALARMS,
    ALARM_COMMANDS,
    SOURCE_HEARTBEATS,
    DEAD_LETTER,
)


# Which departments (OPD, as tokens name them) own each alarm domain's alarms: a token of
# another department may not acknowledge or clear them. The room itself (a token without a
# department, or with the supervisor role) acts on all.
ALARM_OWNERS: dict[str, tuple[str, ...]] = {
    "transit": ("Dinas Perhubungan",),
    "traffic": ("Dinas Perhubungan",),
    "flood": ("Dinas Pekerjaan Umum", "BPBD"),
    "cctv": ("Satpol PP", "Diskominfo"),
    "waste": ("Dinas Lingkungan Hidup",),
    "prices": ("Dinas Perdagangan",),
    "procurement": ("Bagian Pengadaan Barang/Jasa",),
    "reports": ("Diskominfo",),
    "sources": ("Diskominfo",),
}


def may_act_on(domain: str, department: str | None) -> bool:
    """Whether a person acting for ``department`` (None: the whole room) may acknowledge or
    clear an alarm of ``domain``."""
    return department is None or department in ALARM_OWNERS.get(domain, ())


def by_name(name: str) -> TopicSpec:
    for spec in CATALOG:
        if spec.name == name:
            return spec
    raise KeyError(name)
