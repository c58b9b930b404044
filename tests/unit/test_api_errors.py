"""A 500 names the request, never the cause (issue 10)."""

import logging

import httpx
import pytest

from api.app import create_api
from schemas.settings import Settings
from schemas.warehouse import WarehouseError

SECRET_CAUSE = "Code: 47. DB::Exception: Missing columns: 'secret_internal_column'"


class BrokenWarehouse:
    async def query(self, *args: object, **kwargs: object) -> list[dict[str, object]]:
        raise WarehouseError(SECRET_CAUSE)


async def probe() -> bool:
    return True


async def test_a_server_error_carries_a_request_id_and_no_internal_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_api(Settings(_env_file=None), BrokenWarehouse(), probe, None)  # type: ignore[arg-type, call-arg]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
        with caplog.at_level(logging.ERROR, logger="api.errors"):
            r = await api.get("/v1/alarms")
        assert r.status_code == 500
        body = r.json()
        assert (
            body["detail"] == "internal error" and body["request_id"] == r.headers["x-request-id"]
        )
        assert "secret_internal_column" not in r.text and "DB::Exception" not in r.text
        # The cause is in the log, under the same id.
        (record,) = [rec for rec in caplog.records if rec.getMessage() == "request failed"]
        assert record.request_id == body["request_id"]  # type: ignore[attr-defined]
        assert SECRET_CAUSE in caplog.text
        # A proxy's request id is kept; a strange one is replaced.
        r = await api.get("/v1/alarms", headers={"X-Request-ID": "edge-7f3a"})
        assert r.headers["x-request-id"] == "edge-7f3a" == r.json()["request_id"]
        r = await api.get("/v1/alarms", headers={"X-Request-ID": "bad id\n<script>"})
        assert r.headers["x-request-id"] != "bad id\n<script>"
        # Replies that are not errors carry one too.
        ok = await api.get("/healthz")
        assert ok.status_code == 200 and len(ok.headers["x-request-id"]) == 32
