"""Citizen reports: API and import → Kafka (tansu) → worker → ClickHouse (chdb) → API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from connectors.publisher import partition_for
from connectors.report_import import ReportImport
from schemas import clickhouse_ddl as ddl
from schemas.catalog import DEAD_LETTER, REPORT_EVENTS
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import api_client, eventually, running_worker

pytestmark = pytest.mark.integration

DPU = "Dinas Pekerjaan Umum"
SECRET = {"name": "Rahasia Warga", "phone": "+62 811-000-999", "email": "warga.rahasia@example.org"}


async def _status(api: httpx.AsyncClient, rid: str, want: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        r = await api.get(f"/v1/reports/{rid}")
        return r.json() if r.status_code == 200 and r.json()["status"] == want else None

    return await eventually(check, 30, f"report {rid} {want}")  # type: ignore[no-any-return]


async def _move(api: httpx.AsyncClient, rid: str, status: str, **kw: Any) -> httpx.Response:
    return await api.post(
        f"/v1/reports/{rid}/status", json={"status": status, "actor": "budi.dpu", **kw}
    )


async def _dead_letters(bootstrap: str, want: int) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(
        DEAD_LETTER.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[dict[str, str]] = []
    try:

        async def got() -> bool:
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend({k: v.decode() for k, v in r.headers} for r in recs)
            return len(seen) >= want

        await eventually(got, 30, f"{want} dead letters")
    finally:
        await consumer.stop()
    return seen


def _export(tmp_path: Path) -> Path:
    """An old fire report (2 h SLA, 3 days ago), a fresh one in the same partition (its
    time moves that partition's event clock to now), a garbage line and an illegal history."""
    now = datetime.now(UTC)
    target = partition_for("lapor-FRESH", REPORT_EVENTS.partitions)
    old_id = next(
        f"OLD-{i}"
        for i in range(100)
        if partition_for(f"lapor-OLD-{i}", REPORT_EVENTS.partitions) == target
    )

    def rec(rid: str, at: datetime, category: str, **kw: Any) -> bytes:
        return orjson.dumps({"id": rid, "app": "lapor", "created_at": at.isoformat(), "kategori": category,
                             "isi": "laporan", "lokasi": {"lat": -6.968, "lon": 110.427}, **kw})  # fmt: skip

    path = tmp_path / "lapor.jsonl"
    path.write_bytes(b"\n".join([
        rec(old_id, now - timedelta(days=3), "kebakaran", pelapor={"nama": "Pak Old"}),
        b"this is not json",
        rec("BAD", now - timedelta(hours=1), "sampah",
            riwayat=[{"status": "selesai", "waktu": (now - timedelta(minutes=30)).isoformat()}]),
        rec("FRESH", now, "sampah"),
    ]) + b"\n")  # fmt: skip
    return path


async def test_reports_end_to_end(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    wh = clean_warehouse
    async with (
        running_worker(settings, broker.bootstrap, wh),
        api_client(settings, wh, broker.bootstrap) as api,
    ):
        # Bad intake: 422 naming the field.
        place = {"text": "Jalan berlubang", "lat": -6.99, "lon": 110.42}
        r = await api.post("/v1/reports", json=place)
        assert r.status_code == 422 and [e["loc"] for e in r.json()["detail"]] == [
            ["body", "category"]
        ]
        r = await api.post("/v1/reports", json={**place, "category": "ufo"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "category"]
        r = await api.post("/v1/reports", json={**place, "category": "jalan_rusak", "lat": -6.5})
        assert r.status_code == 422 and {e["loc"][-1] for e in r.json()["detail"]} == {"lat", "lon"}
        r = await api.post(
            "/v1/reports", json={**place, "category": "jalan_rusak", "photo_urls": ["javascript:x"]}
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "photo_urls"]

        r = await api.post("/v1/reports", json={**place, "category": "jalan_rusak", "reporter": SECRET,
                                                "photo_urls": ["https://foto.example/lubang.jpg"]})  # fmt: skip
        assert r.status_code == 202, r.text
        accepted = r.json()
        rid = accepted["report_id"]
        assert (accepted["department"], accepted["kecamatan"], accepted["sla_hours"]) == (
            DPU,
            "Semarang Selatan",
            72,
        )

        report = await _status(api, rid, "received")
        assert (report["department"], report["category"], report["overdue"]) == (
            DPU,
            "jalan_rusak",
            False,
        )
        assert report["photo_urls"] == ["https://foto.example/lubang.jpg"]
        assert report["allowed_next"] == ["assigned", "rejected"]

        r = await _move(api, rid, "resolved")
        assert r.status_code == 409 and "received cannot become resolved" in r.json()["detail"]
        assert (await _move(api, "no-such-report", "assigned")).status_code == 404
        assert (await _move(api, rid, "assigned", department="Dinas Rahasia")).status_code == 422
        assert (await _move(api, rid, "assigned")).status_code == 202
        await _status(api, rid, "assigned")
        assert (await _move(api, rid, "in_progress", note="tim berangkat")).status_code == 202
        await _status(api, rid, "in_progress")
        assert (await _move(api, rid, "resolved", note="sudah ditambal")).status_code == 202
        done = await _status(api, rid, "resolved")
        assert [e["kind"] for e in done["events"]] == [
            "received",
            "assigned",
            "in_progress",
            "resolved",
        ]
        assert done["events"][1]["actor"] == "budi.dpu" and done["last_note"] == "sudah ditambal"
        assert done["closed_at"] is not None and done["allowed_next"] == []
        r = await _move(api, rid, "assigned", department="Disperkim")
        assert r.status_code == 409 and "closed" in r.json()["detail"]

        staff = (
            await api.get("/v1/reports", params={"department": DPU, "status": "resolved"})
        ).json()
        assert staff["total"] == 1 and staff["items"][0]["report_id"] == rid
        assert (await api.get("/v1/reports", params={"department": "Disperkim"})).json()[
            "total"
        ] == 0
        by_dept = (await api.get("/v1/reports/counts", params={"by": "department"})).json()
        assert by_dept == [
            {"key": DPU, "total": 1, "open": 0, "overdue_open": 0, "resolved": 1, "rejected": 0}
        ]
        by_kec = (await api.get("/v1/reports/counts", params={"by": "kecamatan"})).json()
        assert [(c["key"], c["total"]) for c in by_kec] == [("Semarang Selatan", 1)]
        assert (await api.get("/v1/reports/counts", params={"by": "reporter"})).status_code == 422

        # The reporter's contact is in its own table only.
        for table in (ddl.CITIZEN_REPORTS, ddl.REPORT_EVENTS):
            dump = str(await wh.query(f"SELECT * FROM {table}"))
            assert rid in dump and not any(v in dump for v in SECRET.values())

        async def contact() -> list[dict[str, Any]]:
            return await wh.query(f"SELECT name, phone, email FROM {ddl.REPORT_CONTACTS} WHERE report_id = {{r:String}}",
                                  {"r": rid})  # fmt: skip

        assert await eventually(contact, 30, "the contact row") == [SECRET]

        # Reports from another app: an old one breaches its SLA; bad lines are dead-lettered.
        await run_connector(ReportImport([_export(tmp_path)]), broker.bootstrap)

        async def breach() -> list[dict[str, Any]]:
            page = (await api.get("/v1/alarms", params={"kind": "report_sla_breach"})).json()
            return page["items"]  # type: ignore[no-any-return]

        [alarm] = await eventually(breach, 30, "an SLA breach for the old report")
        assert alarm["entity"].startswith("lapor-OLD-") and alarm["severity"] == "critical"
        assert (
            alarm["domain"] == "reports"
            and alarm["context"]["department"] == "Dinas Pemadam Kebakaran"
        )
        situation = (await api.get("/v1/situation")).json()
        assert situation["counts"]["reports"] == {"open": 3, "overdue_open": 1}
        letters = await _dead_letters(broker.bootstrap, 2)
        assert {(d["reason"], d.get("source.location", "").rsplit(":", 1)[-1]) for d in letters} >= {
            ("invalid_json", "2"), ("illegal_transition", "")}  # fmt: skip
        # The old report is then resolved (by the fire brigade), which clears its alarm.
        old = alarm["entity"]
        for status in ("assigned", "in_progress", "resolved"):
            assert (await _move(api, old, status)).status_code == 202
            await _status(api, old, status)

        async def cleared() -> bool:
            page = (
                await api.get(
                    "/v1/alarms", params={"kind": "report_sla_breach", "state": "cleared"}
                )
            ).json()
            return bool(page["items"])

        await eventually(cleared, 30, "the SLA alarm cleared")
