"""Personal data never leaves through an open door: with tokens configured, every GET
endpoint an anonymous caller can reach is asked, and its output searched for the personal
values this test itself sent (a citizen's words, contacts, exact point and photo, the
staff's name and note, a licence plate). Staff see them; the public does not."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from api.routers.live import events_of
from schemas.catalog import CAMERA_EVENTS, FLOOD_REPORTS, REPORT_EVENTS
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from tests.integration.conftest import api_client, eventually, running_worker, write_tokens

pytestmark = pytest.mark.integration

STAFF_SECRET = "staff-secret-7f3a"
TEXT = "Saluran mampet di depan rumah nomor 17x-unik"
PHONE, EMAIL = "+62 811-4242-4242", "rahasia.warga.x@example.org"
PHOTO = "https://img.example.org/unik-foto-4242.jpg"
LAT, LON = -6.983417, 110.409871  # in Semarang Tengah; no endpoint may echo these digits
NOTE = "Petugas catatan unik 4242"
PLATE = "H 4242 XQ"
PERSONAL = [TEXT, PHONE, EMAIL, PHOTO, "983417", "409871", NOTE, PLATE, "budi.staff.4242"]


def tokens(tmp_path: Path) -> Path:
    staff = ("budi.staff.4242", ["reports", "staff"], "Dinas Pekerjaan Umum")
    return write_tokens(tmp_path / "tokens.toml", {STAFF_SECRET: staff})


def leaks(text: str) -> list[str]:
    return [value for value in PERSONAL if value in text]


async def test_open_endpoints_show_no_personal_data(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"api_tokens_file": tokens(tmp_path)})
    staff = {"Authorization": f"Bearer {STAFF_SECRET}"}
    async with running_worker(settings, broker.bootstrap, clean_warehouse):
        async with api_client(settings, clean_warehouse, broker.bootstrap) as api:
            r = await api.post("/v1/reports", json={
                "category": "jalan_rusak", "text": TEXT, "lat": LAT, "lon": LON,
                "photo_urls": [PHOTO], "reporter": {"name": "Warga", "phone": PHONE, "email": EMAIL},
            })  # fmt: skip
            assert r.status_code == 202, r.text
            rid = r.json()["report_id"]

            async def stored() -> bool:
                return (await api.get(f"/v1/reports/{rid}")).status_code == 200

            await eventually(stored, 30, "the report stored")
            move = await api.post(f"/v1/reports/{rid}/status", headers=staff,
                                  json={"status": "assigned", "actor": "x", "note": NOTE})  # fmt: skip
            assert move.status_code == 202, move.text
            flood = await api.post("/v1/flood/reports", json={
                "lat": LAT, "lon": LON, "depth_cm": 30, "note": NOTE, "photo_url": PHOTO})  # fmt: skip
            assert flood.status_code == 202, flood.text

            async def moved() -> bool:
                body = (await api.get(f"/v1/reports/{rid}", headers=staff)).json()
                return body["status"] == "assigned"

            await eventually(moved, 30, "the move stored")
            # A refused event of a citizen's report is dead-lettered with its bytes.
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await producer.start()
            try:
                bad = {"report_id": "bad-1", "kind": "no-such-step", "text": TEXT, "phone": PHONE}
                await producer.send_and_wait(REPORT_EVENTS.name, orjson.dumps(bad), key=b"bad-1")
            finally:
                await producer.stop()

            async def lettered() -> bool:
                letters = (await api.get("/v1/deadletters", headers=staff)).json()
                return any(TEXT in (x["raw"] or "") for x in letters)

            await eventually(lettered, 30, "the refused event dead-lettered")
            # Staff see everything they need to work on the report.
            full = (await api.get(f"/v1/reports/{rid}", headers=staff)).text
            assert TEXT in full and PHOTO in full and NOTE in full and "budi.staff.4242" in full

            # Anonymous: every GET path of the API, path parameters filled with our ids.
            fills = {"report_id": rid, "kecamatan": "Semarang Tengah"}
            asked = 0
            for path, ops in api._transport.app.openapi()["paths"].items():  # type: ignore[attr-defined]
                if "get" not in ops or path.startswith("/v1/live"):
                    continue
                url = re.sub(r"\{(\w+)\}", lambda m: fills.get(m.group(1), "x"), path)
                r = await api.get(url)
                asked += 1
                assert not leaks(r.text), f"GET {url} shows {leaks(r.text)}"
            assert asked >= 20
            public = (await api.get(f"/v1/reports/{rid}")).json()
            assert public["kecamatan"] == "Semarang Tengah" and public["status"] == "assigned"
            assert public["text"] is None and public["events"][-1]["actor"] is None
            # A wrong token is refused, not quietly served the public view.
            wrong = await api.get(f"/v1/reports/{rid}", headers={"Authorization": "Bearer no"})
            assert wrong.status_code == 401


def test_live_streams_drop_personal_fields_for_the_public() -> None:
    now = datetime.now(UTC).isoformat()
    items = {
        REPORT_EVENTS.name: {"report_id": "r1", "kind": "received", "timestamp": now,
                             "category": "jalan_rusak", "text": TEXT, "lat": LAT, "lon": LON,
                             "photo_urls": [PHOTO], "actor": "budi.staff.4242", "note": NOTE},
        FLOOD_REPORTS.name: {"report_id": "f1", "lat": LAT, "lon": LON, "depth_cm": 30,
                             "timestamp": now, "note": NOTE, "photo_url": PHOTO},
        CAMERA_EVENTS.name: {"camera_id": "cam-1", "kind": "plate_read", "confidence": 0.9,
                             "timestamp": now, "plate": PLATE},
    }  # fmt: skip
    for topic, item in items.items():
        value = orjson.dumps([item])
        (public,) = events_of(topic, 0, 1, value, full=False)
        assert not leaks(public.data), f"{topic} live shows {leaks(public.data)}"
        (staff,) = events_of(topic, 0, 1, value, full=True)
        assert leaks(staff.data)
        if "lat" in item:
            assert orjson.loads(public.data)["kecamatan"] == "Semarang Tengah"
