"""Request dependencies: the shared ClickHouse gateway and broker probe live on app.state."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from aiokafka.errors import KafkaError
from fastapi import Depends, HTTPException, Request
from pydantic import AfterValidator

from api.errors import InternalError
from schemas.warehouse import Warehouse, WarehouseError, WarehouseUnavailable

log = logging.getLogger(__name__)


def get_warehouse(request: Request) -> Warehouse:
    return request.app.state.warehouse  # type: ignore[no-any-return]


def get_broker_probe(request: Request) -> Callable[[], Awaitable[bool]]:
    return request.app.state.broker_probe  # type: ignore[no-any-return]


WarehouseDep = Annotated[Warehouse, Depends(get_warehouse)]


async def run_query(
    warehouse: Warehouse, sql: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Query, turning an unreachable ClickHouse into a 503 with Retry-After."""
    try:
        return await warehouse.query(sql, params)
    except WarehouseUnavailable as exc:
        raise HTTPException(
            503,
            f"ClickHouse unavailable: {exc}",
            headers={"Retry-After": str(int(exc.retry_after) or 1)},
        ) from exc
    except WarehouseError as exc:
        # ClickHouse's own words stay in the log (under the request id), never in a reply.
        raise InternalError(f"query failed: {exc}") from exc


async def publish(request: Request, topic: str, key: str, value: bytes) -> None:
    """Publish an event for the worker, turning an unreachable broker into a 503 with
    Retry-After: every intake answers an outage the same way."""
    try:
        await request.app.state.publisher.send(topic, key, value)
    except (KafkaError, OSError) as exc:
        log.warning("publish failed", extra={"topic": topic, "error": str(exc)})
        raise HTTPException(503, "broker unavailable", headers={"Retry-After": "5"}) from exc


def utc(value: datetime | None) -> datetime | None:
    """A time in UTC (the warehouse hands back UTC-aware times; other sources may not)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Responses always say UTC, whatever zone a value came in.
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


EARLIEST, LATEST = datetime(1900, 1, 2, tzinfo=UTC), datetime(2299, 12, 30, tzinfo=UTC)


def local_utc(request: Request, value: datetime | None) -> datetime | None:
    """A time as UTC; one given without an offset is the room's local time
    (SITROOM_TIMEZONE, WIB by default): someone typing 08:00 in Semarang means 08:00 WIB."""
    if value is None:
        return None
    if not EARLIEST.year <= value.year <= LATEST.year:
        # What ClickHouse's DateTime64 holds; beyond it a query fails instead of matching.
        raise HTTPException(
            422,
            [{"loc": ["query"], "type": "value_error",
              "msg": f"times must lie between {EARLIEST.year} and {LATEST.year}"}],
        )  # fmt: skip
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(request.app.state.settings.timezone))
    return value.astimezone(UTC)


def local_range(
    request: Request, since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """``since``/``until`` as UTC (naive ones in local time), or a 422 when out of order."""
    since, until = local_utc(request, since), local_utc(request, until)
    check_range(since, until)
    return since, until


def check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise HTTPException(
            422,
            [
                {
                    "loc": ["query", "since"],
                    "msg": "since must be before until",
                    "type": "value_error",
                }
            ],
        )
