"""A deterministic simulator of citizens' reports and the departments answering them.

On its first tick it files a backlog of reports from the past few days, some still open
past their SLA (so `report_sla_breach` alarms show at once); then it files a new report
now and then at real places in Semarang and moves most of them through the lifecycle,
leaving some untouched (they breach later) and rejecting a few.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from connectors.base import TickSource
from schemas.catalog import REPORT_EVENTS
from schemas.reports import ReportEvent, ReportStatus, Routing

# (name, lat, lon): approximate points inside the city's kecamatan.
PLACES = (
    ("Simpang Lima", -6.990, 110.422), ("Tugu Muda", -6.984, 110.409),
    ("Pasar Johar", -6.968, 110.427), ("Kaligawe", -6.955, 110.455),
    ("Banyumanik", -7.060, 110.420), ("Tembalang", -7.050, 110.440),
    ("Ngaliyan", -6.990, 110.350), ("Mijen", -7.080, 110.320),
    ("Genuk", -6.960, 110.480), ("Pedurungan", -7.000, 110.470),
    ("Gajahmungkur", -7.020, 110.400), ("Semarang Barat", -6.990, 110.380),
)  # fmt: skip
TEXTS = {
    "jalan_rusak": "Jalan berlubang cukup dalam, membahayakan pengendara motor",
    "drainase": "Saluran tersumbat sampah, air meluap saat hujan",
    "genangan": "Genangan setinggi mata kaki tidak surut sejak pagi",
    "sampah": "Sampah di TPS belum diangkut tiga hari",
    "pencemaran": "Bau menyengat dari saluran dekat permukiman",
    "lampu_jalan": "Lampu PJU mati di sepanjang ruas jalan",
    "pohon_tumbang": "Pohon besar condong ke jalan, rawan tumbang",
    "lalu_lintas": "Lampu lalu lintas mati, simpang macet",
    "kesehatan": "Banyak jentik nyamuk, mohon fogging",
    "ketertiban": "PKL menutup trotoar",
    "adminduk": "KTP-el belum jadi setelah dua bulan",
    "kebakaran": "Asap dari gudang di belakang pasar",
    "air_bersih": "Air PDAM tidak mengalir sejak kemarin",
}


@dataclass(frozen=True)
class Planned:
    at: float
    event: ReportEvent


class ReportSimulator(TickSource):
    name = "report-simulator"
    topic = REPORT_EVENTS

    def __init__(self, routing: Routing, seed: int = 7, interval_s: float = 60.0,
                 start: float | None = None, duration_s: float | None = None,
                 realtime: bool = True, new_per_hour: float = 6.0, backlog: int = 12) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self._clock(interval_s, start, duration_s, realtime)
        self.routing = routing
        self.departments = routing.departments
        self.p_new = min(1.0, new_per_hour * interval_s / 3600)
        self.backlog = backlog
        self.serial = 0
        self.plan: list[Planned] = []
        self.seed = seed

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, ReportEvent)
        return event.report_id

    def _event(self, rid: str, kind: ReportStatus, t: float, **kw: object) -> ReportEvent:
        return ReportEvent(report_id=rid, kind=kind, timestamp=datetime.fromtimestamp(t, UTC),
                           source=self.name, **kw)  # type: ignore[arg-type]  # fmt: skip

    def _file(self, t: float) -> ReportEvent:
        """A new report at time t, with its future lifecycle planned."""
        self.serial += 1
        rid = f"sim-{self.seed}-{self.serial:05d}"
        category = self.rng.choice(self.routing.categories)
        _, lat, lon = self.rng.choice(PLACES)
        lat, lon = lat + self.rng.uniform(-0.003, 0.003), lon + self.rng.uniform(-0.003, 0.003)
        received = self._event(
            rid, ReportStatus.RECEIVED, t, category=category.id, lat=round(lat, 5),
            lon=round(lon, 5), text=TEXTS.get(category.id, category.name),
            channel=self.rng.choice(["lapor", "whatsapp", "android", "web"]),
        )  # fmt: skip
        sla_s = category.sla_hours * 3600
        fate = self.rng.random()
        officer = f"petugas-{self.rng.randint(1, 40):02d}"
        if fate < 0.1:
            self._later(t + self.rng.uniform(600, 3600), rid, ReportStatus.REJECTED,
                        actor=officer, note="laporan tidak dapat diverifikasi")  # fmt: skip
        elif fate < 0.75:
            a = t + self.rng.uniform(0.02, 0.1) * sla_s
            p = a + self.rng.uniform(0.05, 0.2) * sla_s
            done = p + self.rng.uniform(0.1, 0.6) * sla_s
            if self.rng.random() < 0.15:  # handled late: breaches before it is resolved
                done = t + self.rng.uniform(1.2, 2.0) * sla_s
            self._later(a, rid, ReportStatus.ASSIGNED, actor="admin.lapor")
            self._later(p, rid, ReportStatus.IN_PROGRESS, actor=officer)
            self._later(done, rid, ReportStatus.RESOLVED, actor=officer, note="sudah ditangani")
        # Otherwise nobody touches it: it breaches its SLA in due course.
        return received

    def _later(self, at: float, rid: str, kind: ReportStatus, **kw: object) -> None:
        self.plan.append(Planned(at, self._event(rid, kind, at, **kw)))

    def events_at(self, t: float) -> list[ReportEvent]:
        out: list[ReportEvent] = []
        if self.serial == 0:
            for _ in range(self.backlog):
                out.append(self._file(t - self.rng.uniform(3 * 3600, 4 * 86400)))
        if self.rng.random() < self.p_new:
            out.append(self._file(t))
        due = sorted((p for p in self.plan if p.at <= t), key=lambda p: p.at)
        self.plan = [p for p in self.plan if p.at > t]
        out.extend(p.event for p in due)
        # Per report, in time order: the backlog's past steps come before its new reports.
        return sorted(out, key=lambda e: e.timestamp)
