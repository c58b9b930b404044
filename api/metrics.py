"""HTTP metrics of the API."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import Counter, Histogram

REQUESTS = Counter("sitroom_api_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram("sitroom_api_request_seconds", "HTTP request latency", ["route", "method"])


async def observe_requests(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    REQUESTS.labels(path, request.method, str(response.status_code)).inc()
    LATENCY.labels(path, request.method).observe(time.perf_counter() - started)
    return response
