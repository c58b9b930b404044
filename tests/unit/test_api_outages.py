"""A broker outage answers every intake the same way: 503 with Retry-After (issue 10)."""

from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka.errors import KafkaConnectionError

from api.app import create_api
from schemas.settings import Settings

NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
ALARM = {"id": "overspeed/K1-01/1", "kind": "overspeed", "domain": "transit", "entity": "K1-01",
         "severity": "warning", "level": "over limit", "state": "raised", "reason": "raised",
         "started_at": NOW, "last_seen": NOW, "cleared_at": None, "value": 75.0,
         "threshold": 60.0, "version": 1, "acknowledged_by": None, "acknowledged_at": None,
         "cleared_by": None, "context": "{}"}  # fmt: skip


class OneAlarm:
    async def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [dict(ALARM)]


class BrokerDown:
    async def send(self, topic: str, key: str, value: bytes) -> None:
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]")


async def probe() -> bool:
    return False


async def test_every_intake_answers_a_broker_outage_with_503_and_retry_after() -> None:
    app = create_api(Settings(_env_file=None), OneAlarm(), probe, BrokerDown())  # type: ignore[arg-type, call-arg]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as api:
        place = {"lat": -6.99, "lon": 110.42}
        replies = [
            await api.post("/v1/flood/reports", json={**place, "depth_cm": 30}),
            await api.post("/v1/reports", json={**place, "category": "sampah", "text": "sampah"}),
            await api.post("/v1/alarms/overspeed/K1-01/1/acknowledge", json={"by": "ops"}),
        ]
    for r in replies:
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5" and r.json()["detail"] == "broker unavailable"
        assert "9092" not in r.text
