"""With API tokens configured, department staff move only their own department's reports,
operators acknowledge alarms, and the token's name is what gets recorded as the actor."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from tests.integration.conftest import api_client, eventually, running_worker, write_tokens

pytestmark = pytest.mark.integration

STAFF = {"dpu-secret": ("budi.dpu", "Dinas Pekerjaan Umum"), "dlh-secret": ("sari.dlh", "Dinas Lingkungan Hidup")}  # fmt: skip


def tokens(tmp_path: Path) -> Path:
    staff = {secret: (name, ["reports"], dept) for secret, (name, dept) in STAFF.items()}
    return write_tokens(tmp_path / "tokens.toml", staff)


async def test_staff_move_only_their_departments_reports(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"api_tokens_file": tokens(tmp_path)})
    place = {"text": "Jalan berlubang", "lat": -6.9932, "lon": 110.4203}
    async with running_worker(settings, broker.bootstrap, clean_warehouse):
        async with api_client(settings, clean_warehouse, broker.bootstrap) as api:
            r = await api.post("/v1/reports", json={**place, "category": "jalan_rusak"})
            assert r.status_code == 202  # citizens need no token
            rid = r.json()["report_id"]

            async def stored() -> bool:
                return (await api.get(f"/v1/reports/{rid}")).status_code == 200

            await eventually(stored, 30, "the report stored")
            move = f"/v1/reports/{rid}/status"
            body = {"status": "assigned", "actor": "claimed.name"}
            assert (await api.post(move, json=body)).status_code == 401
            other = await api.post(move, json=body, headers={"Authorization": "Bearer dlh-secret"})
            assert other.status_code == 403 and "Dinas Pekerjaan Umum" in other.json()["detail"]
            own = await api.post(move, json=body, headers={"Authorization": "Bearer dpu-secret"})
            assert own.status_code == 202, own.text

            async def moved() -> list:  # type: ignore[type-arg]
                staff = {"Authorization": "Bearer dpu-secret"}
                events = (await api.get(f"/v1/reports/{rid}", headers=staff)).json()["events"]
                return [e for e in events if e["kind"] == "assigned"]

            (step,) = await eventually(moved, 30, "the move stored")
            assert step["actor"] == "budi.dpu"  # the token's name, not what the body claimed
