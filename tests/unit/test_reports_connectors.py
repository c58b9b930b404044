import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from connectors.report_import import ReportImport
from connectors.report_simulator import PLACES, ReportSimulator
from schemas.alarm_rules import load_rules
from schemas.catalog import REPORT_CONTACTS, TopicSpec
from schemas.reports import ReportContact, ReportEvent, load_routing
from schemas.settings import Settings
from schemas.spatial import gazetteer
from streams.pipeline import Emitted, Message
from streams.reports_logic import ReportsPartition

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, list[BaseModel]]] = []
        self.dead: list[tuple[bytes, str, str, str]] = []

    async def publish(
        self, spec: TopicSpec, events: Sequence[BaseModel], key: Callable[[BaseModel], str]
    ) -> int:
        if events:
            self.published.append((spec.name, list(events)))
        return len(events)

    async def dead_letter(self, raw: bytes, reason: str, detail: str, source: str) -> None:
        self.dead.append((raw, reason, detail, source))


def line(**over: Any) -> bytes:
    base: dict[str, Any] = {
        "id": "LPR-1", "app": "lapor", "created_at": "2026-11-20T08:00:00+07:00",
        "kategori": "sampah", "isi": "Sampah menumpuk", "lokasi": {"lat": -6.99, "lon": 110.42},
        "lampiran": ["https://lapor.example/1.jpg"],
        "pelapor": {"nama": "Siti", "telepon": "0812 3456 789"},
        "riwayat": [{"status": "disposisi", "waktu": "2026-11-20T09:00:00+07:00", "oleh": "admin"},
                    {"status": "diproses", "waktu": "2026-11-20T10:00:00+07:00"},
                    {"status": "selesai", "waktu": "2026-11-20T12:00:00+07:00", "catatan": "diangkut"}],
    }  # fmt: skip
    base.update(over)
    return orjson.dumps({k: v for k, v in base.items() if v is not None})


def run_import(tmp_path: Path, lines: list[bytes]) -> tuple[list[BaseModel], FakePublisher]:
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    pub = FakePublisher()
    source = ReportImport([path])

    async def collect() -> list[BaseModel]:
        out: list[BaseModel] = []
        async for batch in source.batches(pub):  # type: ignore[arg-type]
            out.extend(batch)
        return out

    return asyncio.run(collect()), pub


def test_an_exported_report_becomes_its_lifecycle_and_a_separate_contact(tmp_path: Path) -> None:
    events, pub = run_import(tmp_path, [line()])
    assert all(isinstance(e, ReportEvent) for e in events)
    assert [(e.report_id, e.kind.value) for e in events] == [  # type: ignore[attr-defined]
        ("lapor-LPR-1", "received"), ("lapor-LPR-1", "assigned"),
        ("lapor-LPR-1", "in_progress"), ("lapor-LPR-1", "resolved")]  # fmt: skip
    first = events[0]
    assert isinstance(first, ReportEvent)
    assert first.timestamp == datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    assert (first.category, first.channel, first.source) == ("sampah", "lapor", "import:lapor")
    assert "Siti" not in first.model_dump_json() and "0812" not in first.model_dump_json()
    [(topic, contacts)] = pub.published
    assert topic == REPORT_CONTACTS.name
    assert isinstance(contacts[0], ReportContact)
    assert (contacts[0].report_id, contacts[0].name, contacts[0].phone) == (
        "lapor-LPR-1",
        "Siti",
        "0812 3456 789",
    )


def test_bad_lines_are_dead_lettered_with_file_and_line(tmp_path: Path) -> None:
    lines = [
        line(id="A"),
        b"{not json",
        line(id="B", kategori=None),
        line(id="C", riwayat=[{"status": "dibatalkan", "waktu": "2026-11-20T09:00:00+07:00"}]),
        line(id="D", lampiran=["file:///etc/passwd"]),
        line(id="E", pelapor=None),
    ]
    events, pub = run_import(tmp_path, lines)
    assert sorted({e.report_id for e in events}) == ["lapor-A", "lapor-E"]  # type: ignore[attr-defined]
    assert [(d[1], d[3].rsplit(":", 1)[1]) for d in pub.dead] == [
        ("invalid_json", "2"), ("schema_violation", "3"), ("schema_violation", "4"),
        ("schema_violation", "5")]  # fmt: skip
    assert pub.dead[0][0] == b"{not json" and "export.jsonl" in pub.dead[0][3]
    assert "dibatalkan" in pub.dead[2][2]  # our own words on a status, not personal data
    assert [c.report_id for _, cs in pub.published for c in cs] == ["lapor-A"]  # type: ignore[attr-defined]


def test_a_dead_letter_detail_never_quotes_a_citizen_s_data(tmp_path: Path) -> None:
    secret_phone, secret_mail = "0812-SECRET-99", "not-an-email@@kampung"
    lines = [line(id="P", pelapor={"nama": "Siti", "telepon": secret_phone}),
             line(id="M", pelapor={"nama": "Siti", "email": secret_mail}),
             line(id="T", isi=12345)]  # fmt: skip
    _, pub = run_import(tmp_path, lines)
    assert len(pub.dead) == 3
    for _, reason, detail, _ in pub.dead:
        assert reason == "schema_violation" and detail
        assert secret_phone not in detail and secret_mail not in detail
        assert "12345" not in detail and "input_value" not in detail
    assert "phone" in pub.dead[0][2] and "email" in pub.dead[1][2]


def test_places_are_inside_the_city() -> None:
    g = gazetteer()
    assert all(g.kecamatan.at(lon, lat) for _, lat, lon in PLACES)


def simulate(seed: int, hours: float) -> list[ReportEvent]:
    sim = ReportSimulator(
        load_routing(), seed=seed, start=T0.timestamp(), duration_s=hours * 3600, realtime=False
    )
    out: list[ReportEvent] = []
    t = sim.start
    while t - sim.start < hours * 3600:
        out.extend(sim.events_at(t))
        t += sim.interval_s
    return out


def test_the_simulator_is_deterministic_and_its_lifecycles_are_legal() -> None:
    a, b = simulate(3, 48), simulate(3, 48)
    assert [e.model_dump() for e in a] == [e.model_dump() for e in b]
    assert len({e.report_id for e in a}) > 12 + 100
    part = ReportsPartition(Settings(_env_file=None), load_rules(), load_routing(), gazetteer())  # type: ignore[call-arg]
    out = Emitted()
    now = T0 + timedelta(hours=48)
    rejected = []
    for offset, event in enumerate(a):
        _, rej = part.handle(
            Message("reports.events", 0, offset, None, event.model_dump_json().encode()), now, out
        )
        rejected += rej
    assert rejected == []
    kinds = {e.kind.value for e in a}
    assert kinds == {"received", "assigned", "in_progress", "resolved", "rejected"}
    part.tick(now, out)
    raised = {x.entity for x in out.alarms if x.state.value == "raised"}
    assert raised and raised <= set(part.state.open)
