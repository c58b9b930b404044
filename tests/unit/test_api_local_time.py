"""Times without an offset are the room's local time (SITROOM_TIMEZONE), never a 500."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import ValidationError

from api.app import create_api
from schemas.settings import Settings

WIB = ZoneInfo("Asia/Jakarta")


class Recording:
    def __init__(self) -> None:
        self.params: list[dict[str, Any]] = []

    async def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self.params.append(dict(params or {}))
        return [{"n": 0}] if "count() AS n " in sql else []


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    async def send(self, topic: str, key: str, value: bytes) -> None:
        self.sent.append((topic, key, value))


async def probe() -> bool:
    return True


def client(wh: Recording, pub: Publisher | None = None) -> httpx.AsyncClient:
    app = create_api(Settings(_env_file=None), wh, probe, pub)  # type: ignore[arg-type, call-arg]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_naive_query_time_is_local_time_and_a_mixed_range_works() -> None:
    wh = Recording()
    async with client(wh) as api:
        r = await api.get(
            "/v1/transit/overspeed",
            params={"since": "2026-11-01T08:00", "until": "2026-11-02T00:00Z"},
        )
        assert r.status_code == 200, r.text
        assert wh.params[0]["since"] == datetime(2026, 11, 1, 1, 0, tzinfo=UTC)  # 08:00 WIB
        r = await api.get(
            "/v1/transit/overspeed",
            params={"since": "2026-11-02T08:00", "until": "2026-11-02T00:00Z"},
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"]
        r = await api.get("/v1/transit/corridors/K1/windows", params={"since": "2026-11-01T08:00"})
        assert r.status_code == 200, r.text
        r = await api.get("/v1/reports/counts", params={"since": "2026-11-01T08:00"})
        assert r.status_code == 200, r.text


async def test_a_citizen_s_local_now_is_not_the_future() -> None:
    pub = Publisher()
    async with client(Recording(), pub) as api:
        local_now = datetime.now(WIB).replace(tzinfo=None).isoformat(timespec="seconds")
        r = await api.post("/v1/flood/reports",
                           json={"lat": -6.99, "lon": 110.42, "depth_cm": 30, "timestamp": local_now})  # fmt: skip
        assert r.status_code == 202, r.text
        later = (datetime.now(WIB) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
        r = await api.post("/v1/flood/reports",
                           json={"lat": -6.99, "lon": 110.42, "depth_cm": 30, "timestamp": later})  # fmt: skip
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "timestamp"]


def test_the_time_zone_setting_is_checked() -> None:
    assert Settings(_env_file=None, timezone="Asia/Makassar").timezone == "Asia/Makassar"  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings(_env_file=None, timezone="Mars/Olympus")  # type: ignore[call-arg]
