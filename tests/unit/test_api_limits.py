"""Public intake that cannot be flooded: 429 with Retry-After, 413 for big bodies (issue 10)."""

from collections.abc import AsyncIterator
from typing import Any

import httpx

from api.app import create_api
from api.limits import TokenBuckets
from schemas.settings import Settings


class NoRows:
    async def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [{"n": 0}] if "count() AS n " in sql else []


class Publisher:
    async def send(self, topic: str, key: str, value: bytes) -> None:
        pass


async def probe() -> bool:
    return True


def client(**settings: Any) -> httpx.AsyncClient:
    app = create_api(Settings(_env_file=None, **settings), NoRows(), probe, Publisher())  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


FLOOD = {"lat": -6.99, "lon": 110.42, "depth_cm": 20}


async def test_one_client_files_a_burst_then_waits_and_reads_stay_open() -> None:
    async with client(api_intake_burst=3, api_intake_per_minute=6) as api:
        codes = [(await api.post("/v1/flood/reports", json=FLOOD)).status_code for _ in range(3)]
        assert codes == [202, 202, 202]
        r = await api.post("/v1/reports", json={**FLOOD, "category": "sampah", "text": "x"})
        assert r.status_code == 429 and r.headers["retry-after"] == "10"  # one every 10 s
        assert "too many" in r.json()["detail"]
        assert (await api.get("/v1/flood/reports")).status_code == 200  # reads are not intake


def test_buckets_refill_with_time_and_keep_clients_apart() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, burst=2, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 1.0]
    assert buckets.take("b") == 0.0  # another client
    now[0] = 1.0
    assert buckets.take("a") == 0.0


async def test_a_body_over_the_limit_is_413_declared_or_streamed() -> None:
    async with client(api_max_body_bytes=2048) as api:
        big = {**FLOOD, "note": "x" * 5000}
        r = await api.post("/v1/flood/reports", json=big)
        assert r.status_code == 413 and "2048" in r.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"lat": -6.99, "lon": 110.42, "note": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        r = await api.post("/v1/flood/reports", content=chunks(),
                           headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 413
        assert (await api.post("/v1/flood/reports", json=FLOOD)).status_code == 202


async def test_behind_a_trusted_proxy_each_citizen_has_a_bucket_of_their_own() -> None:
    from sitroom.runtime import api_config

    settings = Settings(_env_file=None, api_intake_burst=1, api_forwarded_allow_ips="10.0.0.0/8")  # type: ignore[call-arg]
    app = create_api(settings, NoRows(), probe, Publisher())  # type: ignore[arg-type]
    config = api_config(settings, app)
    config.load()  # wraps the app as uvicorn serves it, proxy headers included

    def via(peer: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=config.loaded_app, client=(peer, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://t")

    async with via("10.1.2.3") as ingress, via("203.0.113.9") as stranger:
        first = {"X-Forwarded-For": "198.51.100.1"}
        second = {"X-Forwarded-For": "198.51.100.2"}
        codes = [(await ingress.post("/v1/flood/reports", json=FLOOD, headers=h)).status_code
                 for h in (first, second, first)]  # fmt: skip
        assert codes == [202, 202, 429]  # two citizens through one ingress, then a repeat
        # An untrusted peer cannot pick a fresh bucket by sending the header.
        codes = [(await stranger.post("/v1/flood/reports", json=FLOOD, headers=h)).status_code
                 for h in ({"X-Forwarded-For": "1.1.1.1"}, {"X-Forwarded-For": "2.2.2.2"})]  # fmt: skip
        assert codes == [202, 429]
