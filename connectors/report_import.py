"""Citizen reports exported by other apps (LAPOR!-like), as JSON lines.

One report per line, in the shape below; ``riwayat`` (history) is optional and becomes the
report's later lifecycle events, in order. The reporter (``pelapor``) goes to
``reports.contacts`` only. Report ids are ``<app>-<id>``, so a re-imported file yields the
same ids (the worker rejects the repeated steps as illegal transitions). Lines that are not
JSON, miss a field, or name an unknown status are dead-lettered with file and line.

    {"id": "LPR-000123", "app": "lapor", "created_at": "2026-11-27T08:15:00+07:00",
     "kategori": "jalan_rusak", "isi": "Jalan berlubang di depan SD", "kanal": "android",
     "lokasi": {"lat": -6.99, "lon": 110.42}, "lampiran": ["https://.../1.jpg"],
     "pelapor": {"nama": "Siti", "telepon": "0812...", "email": "siti@example.org"},
     "riwayat": [{"status": "disposisi", "waktu": "...", "opd": "Dinas Pekerjaan Umum",
                  "oleh": "admin.lapor", "catatan": "..."}]}

Statuses: ``disposisi`` → assigned, ``diproses`` → in_progress, ``selesai`` → resolved,
``ditolak`` → rejected (the English names are accepted too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from connectors.base import Source
from connectors.publisher import KafkaPublisher
from schemas.catalog import REPORT_CONTACTS, REPORT_EVENTS
from schemas.deadletter import Reason, validation_detail
from schemas.reports import ReportContact, ReportEvent, ReportStatus

STATUS_NAMES: dict[str, ReportStatus] = {
    "disposisi": ReportStatus.ASSIGNED,
    "diproses": ReportStatus.IN_PROGRESS,
    "selesai": ReportStatus.RESOLVED,
    "ditolak": ReportStatus.REJECTED,
    **{s.value: s for s in ReportStatus if s is not ReportStatus.RECEIVED},
}
BATCH_LINES = 200


class _Place(BaseModel):
    lat: float
    lon: float


class _Reporter(BaseModel):
    model_config = ConfigDict(extra="ignore")

    nama: str | None = None
    telepon: str | None = None
    email: str | None = None


class _Step(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str
    waktu: AwareDatetime
    opd: str | None = None
    oleh: str | None = None
    catatan: str | None = None


class ExportedReport(BaseModel):
    """One line of another app's export."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=48)
    app: str = Field("lapor", min_length=1, max_length=15, pattern=r"^[A-Za-z0-9_.]+$")
    created_at: AwareDatetime
    kategori: str
    isi: str
    lokasi: _Place
    kanal: str | None = None
    lampiran: list[str] = Field(default_factory=list)
    pelapor: _Reporter | None = None
    riwayat: list[_Step] = Field(default_factory=list)


def map_report(line: ExportedReport) -> tuple[list[ReportEvent], ReportContact | None]:
    """The report's lifecycle events and its reporter's contact; raises ValueError."""
    rid = f"{line.app}-{line.id}"
    source = f"import:{line.app}"
    channel = line.kanal or line.app
    events = [
        ReportEvent(
            report_id=rid, kind=ReportStatus.RECEIVED, timestamp=line.created_at,
            category=line.kategori, text=line.isi, lat=line.lokasi.lat, lon=line.lokasi.lon,
            photo_urls=line.lampiran, channel=channel, source=source,  # type: ignore[arg-type]
        )
    ]  # fmt: skip
    for step in line.riwayat:
        kind = STATUS_NAMES.get(step.status.strip().lower())
        if kind is None:
            raise ValueError(
                f"riwayat: unknown status {step.status!r}; known: {sorted(STATUS_NAMES)}"
            )
        events.append(ReportEvent(
            report_id=rid, kind=kind, timestamp=step.waktu, department=step.opd,
            actor=step.oleh, note=step.catatan, channel=channel, source=source,
        ))  # fmt: skip
    contact = None
    if line.pelapor is not None:
        p = line.pelapor
        contact = ReportContact(report_id=rid, timestamp=line.created_at, name=p.nama,
                                phone=p.telepon, email=p.email, channel=channel)  # fmt: skip
        contact = None if contact.is_empty() else contact
    return events, contact


def _key(event: BaseModel) -> str:
    assert isinstance(event, ReportEvent | ReportContact)
    return event.report_id


class ReportImport(Source):
    name = "report-import"
    finite = True
    topic = REPORT_EVENTS

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = list(files)

    def key(self, event: BaseModel) -> str:
        return _key(event)

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        for path in self.files:
            events: list[ReportEvent] = []
            contacts: list[ReportContact] = []
            with path.open("rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    if not raw.strip():
                        continue
                    where = f"{path}:{number}"
                    try:
                        line = ExportedReport.model_validate_json(raw)
                        new, contact = map_report(line)
                    except ValidationError as exc:
                        broken = any(e["type"] == "json_invalid" for e in exc.errors())
                        reason = Reason.INVALID_JSON if broken else Reason.SCHEMA
                        await publisher.dead_letter(
                            raw.rstrip(b"\r\n"), reason.value, validation_detail(exc), where
                        )
                        continue
                    except ValueError as exc:
                        await publisher.dead_letter(
                            raw.rstrip(b"\r\n"), Reason.SCHEMA.value, str(exc), where
                        )
                        continue
                    events.extend(new)
                    if contact is not None:
                        contacts.append(contact)
                    if len(events) >= BATCH_LINES:
                        await publisher.publish(REPORT_CONTACTS, contacts, _key)
                        yield events
                        events, contacts = [], []
            if events or contacts:
                await publisher.publish(REPORT_CONTACTS, contacts, _key)
                yield events
