"""A bounded schemathesis run against the API's own OpenAPI schema: whatever a client
sends that the schema allows (and much that it does not), the API answers without a
server error, and what it answers conforms to the schema.

The API runs as it does in production: uvicorn on 127.0.0.1 in a thread of its own, the
embedded ClickHouse (with the schema created) and a real broker behind it."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import schemathesis
import uvicorn
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_api
from api.commands import KafkaEventPublisher
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.kafka_admin import broker_reachable, create_topics

pytestmark = pytest.mark.integration

# Live streams never end and the SQL entry point speaks ClickHouse's protocol, not JSON:
# both have tests of their own (test_live, test_clickhouse_http).
EXCLUDED = r"^/v1/live/|^/clickhouse"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api_url(warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    broker = EmbeddedBroker(log_path=Path(tmp_path_factory.mktemp("broker")) / "broker.log")
    bootstrap = broker.start()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    port = _free_port()
    started = threading.Event()
    holder: dict[str, uvicorn.Server] = {}

    def serve() -> None:
        async def main() -> None:
            await create_topics(bootstrap)
            await warehouse.ensure_schema()

            async def probe() -> bool:
                return await broker_reachable(bootstrap)

            app = create_api(settings, warehouse, probe, KafkaEventPublisher(bootstrap))
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                   log_config=None, access_log=False))  # fmt: skip
            holder["server"] = server
            task = asyncio.create_task(server.serve())
            while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn has no started event)
                await asyncio.sleep(0.05)
            started.set()
            await task

        asyncio.run(main())

    thread = threading.Thread(target=serve, name="api-under-test", daemon=True)
    thread.start()
    assert started.wait(60), "the API did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        holder["server"].should_exit = True
        thread.join(30)
        broker.stop()


def test_no_server_error_and_answers_conform(api_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json").exclude(path_regex=EXCLUDED)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=15,
            deadline=None,
            derandomize=True,  # the same cases every run: a failure here is reproducible
            suppress_health_check=list(hypothesis.HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=api_url, timeout=30)
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )

        try:
            check()
        except Exception as exc:  # every operation is tried; all failures are reported
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 30
    assert not failures, "\n\n".join(failures)
