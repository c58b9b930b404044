"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.commands import KafkaEventPublisher
from api.errors import request_ids
from api.limits import Limits, TokenBuckets
from api.metrics import observe_requests
from api.routers import alarms, cctv, flood, health, layers, situation, traffic, transit, waste
from api.routers import wall as wall_page
from api.routers.clickhouse_http import router as clickhouse_http_router
from api.routers.deadletters import router as deadletters_router
from api.routers.live import router as live_router
from api.routers.prices import router as prices_router
from api.routers.procurement import router as procurement_router
from api.routers.reports import router as reports_router
from schemas.access import load_access
from schemas.settings import Settings
from schemas.warehouse import Warehouse


def create_api(
    settings: Settings,
    warehouse: Warehouse,
    broker_probe: Callable[[], Awaitable[bool]],
    publisher: KafkaEventPublisher,
) -> FastAPI:
    app = FastAPI(
        title="sitroom",
        version="0.1.0",
        description="Situation room API of Kota Semarang: transit (Trans Semarang BRT), flood,"
        " traffic, cameras, garbage trucks, market prices, citizens' reports, procurement,"
        " alarms, dead letters, health, metrics.",
    )
    app.state.settings = settings
    app.state.access = load_access(settings.api_tokens_file) if settings.api_tokens_file else None
    app.state.warehouse = warehouse
    app.state.broker_probe = broker_probe
    app.state.publisher = publisher
    app.middleware("http")(observe_requests)
    # Added last, so outermost: every reply carries the id, every failure becomes a bare 500.
    app.middleware("http")(request_ids)
    app.add_middleware(
        Limits,
        max_body_bytes=settings.api_max_body_bytes,
        buckets=TokenBuckets(settings.api_intake_per_minute, settings.api_intake_burst),
    )
    app.include_router(health.router)
    app.include_router(transit.router)
    app.include_router(alarms.router)
    app.include_router(flood.router)
    app.include_router(traffic.router)
    app.include_router(cctv.router)
    app.include_router(waste.router)
    app.include_router(prices_router)
    app.include_router(procurement_router)
    app.include_router(situation.router)
    app.include_router(layers.router)
    app.include_router(reports_router)
    app.include_router(deadletters_router)
    app.include_router(live_router)
    app.include_router(clickhouse_http_router)
    wall_page.install(app)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
