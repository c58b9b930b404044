"""Live feeds for dashboards: Server-Sent Events tailing the room's topics.

Each client gets its own Kafka consumer without a group: it starts at the end of the
topics, commits nothing and takes nothing from the workers. Personal data (reporters'
contacts) and internal topics are not offered.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from aiokafka import AIOKafkaConsumer
from fastapi import APIRouter, HTTPException, Query, Request
from prometheus_client import Gauge
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.auth import may_read
from api.privacy import public_item
from schemas import catalog
from schemas.access import Role

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/live", tags=["live"])

STREAMS: dict[str, tuple[catalog.TopicSpec, ...]] = {
    "alarms": (catalog.ALARMS,),
    "transit": (catalog.VEHICLE_POSITIONS,),
    "flood": (catalog.GAUGE_READINGS, catalog.FLOOD_REPORTS),
    "traffic": (catalog.TRAFFIC_OBSERVATIONS,),
    "cctv": (catalog.CAMERA_EVENTS,),
    "waste": (catalog.TRUCK_POSITIONS,),
    "prices": (catalog.PRICE_OBSERVATIONS,),
    "reports": (catalog.REPORT_EVENTS,),
    "procurement": (catalog.TENDER_EVENTS,),
    "sources": (catalog.SOURCE_HEARTBEATS,),
}
LIVE_CLIENTS = Gauge("sitroom_api_live_clients", "Open live (SSE) connections", ["stream"])
_open: dict[str, int] = {}  # per API process, like the gauge


def events_of(topic: str, partition: int, offset: int, value: bytes | None,
              domain: str | None = None, full: bool = True) -> list[ServerSentEvent]:  # fmt: skip
    """The SSE events of one Kafka record: one per item of a batch; ``domain`` keeps only
    alarms of that domain; without ``full`` (a caller without the staff role) personal fields
    are dropped (api/privacy.py). A record that is not JSON is skipped (the worker
    dead-letters it)."""
    try:
        body: Any = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return []
    items = body if isinstance(body, list) else [body]
    if not full:
        items = [public_item(topic, item) for item in items]
    return [
        ServerSentEvent(
            data=orjson.dumps(item).decode(), event=topic, id=f"{topic}:{partition}:{offset}:{i}"
        )
        for i, item in enumerate(items)
        if domain is None or (isinstance(item, dict) and item.get("domain") == domain)
    ]


async def _tail(
    request: Request, bootstrap: str, name: str, domain: str | None, full: bool = True
) -> AsyncIterator[ServerSentEvent]:
    consumer = AIOKafkaConsumer(
        *(t.name for t in STREAMS[name]),
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    LIVE_CLIENTS.labels(name).inc()
    _open[name] = _open.get(name, 0) + 1
    try:
        while not await request.is_disconnected():
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for tp, records in batches.items():
                for r in records:
                    for event in events_of(tp.topic, tp.partition, r.offset, r.value, domain, full):
                        yield event
    finally:
        LIVE_CLIENTS.labels(name).dec()
        _open[name] -= 1
        await consumer.stop()


@router.get(
    "/{stream}",
    summary="Server-Sent Events of a stream, from now on",
    description="Streams: " + ", ".join(STREAMS) + ". Each event is one JSON item; its `event` "
    "is the topic and its `id` topic:partition:offset:item. A comment line keeps idle "
    "connections open every 15 s. 503 with Retry-After when too many clients are connected.",
    response_class=EventSourceResponse,
)
async def live(
    request: Request,
    stream: str,
    domain: Annotated[str | None, Query(max_length=64, description="alarms of one domain")] = None,
) -> EventSourceResponse:
    if stream not in STREAMS:
        raise HTTPException(404, f"no live stream {stream!r}; streams: {', '.join(STREAMS)}")
    settings = request.app.state.settings
    open_now = sum(_open.values())
    if open_now >= settings.api_live_max_clients:
        raise HTTPException(
            503,
            f"{int(open_now)} live clients already connected; try again later",
            headers={"Retry-After": "30"},
        )
    bootstrap = request.app.state.publisher.bootstrap
    full = may_read(request, Role.STAFF)  # before streaming: a wrong token is a 401
    return EventSourceResponse(_tail(request, bootstrap, stream, domain, full), ping=15)
