"""Live feeds for dashboards: Server-Sent Events tailing the room's topics.

Each client gets its own Kafka consumer without a group: it starts at the end of the
topics, commits nothing and takes nothing from the workers. Personal data (reporters'
contacts) and internal topics are not offered. Every event id carries the client's position
in every partition of its stream (api/live_cursor.py): a client that reconnects with
``Last-Event-ID`` is resumed from the topics themselves, missing nothing and seeing nothing
twice.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import APIRouter, HTTPException, Query, Request
from prometheus_client import Gauge
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.auth import may_read
from api.live_cursor import TP, Positions, UnreadableEventId, parse_event_id, plan_resume
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
    # What the wall at / shows live, on one connection: a browser opens at most six to a
    # host, and the wall's REST reloads need the rest.
    "wall": (
        catalog.ALARMS,
        catalog.VEHICLE_POSITIONS,
        catalog.GAUGE_READINGS,
        catalog.TRUCK_POSITIONS,
        catalog.CAMERA_EVENTS,
        catalog.SOURCE_HEARTBEATS,
    ),
}
# Sent when a stream opens (with the opening positions as its id) and when a resume could
# not replay everything (the client reloads what it shows).
READY, RESYNC = "sitroom.ready", "sitroom.resync"
LIVE_CLIENTS = Gauge("sitroom_api_live_clients", "Open live (SSE) connections", ["stream"])
_open: dict[str, int] = {}  # per API process, like the gauge


def events_of(topic: str, partition: int, offset: int, value: bytes | None,
              domain: str | None = None, full: bool = True, positions: Positions | None = None,
              after_item: int = -1) -> list[ServerSentEvent]:  # fmt: skip
    """The SSE events of one Kafka record: one per item of a batch; ``domain`` keeps only
    alarms of that domain; without ``full`` (a caller without the staff role) personal fields
    are dropped (api/privacy.py). A record that is not JSON is skipped (the worker
    dead-letters it). Items up to ``after_item`` were delivered before a reconnect. With
    ``positions`` the ids carry the stream's positions (resumable)."""
    try:
        body: Any = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return []
    items = body if isinstance(body, list) else [body]
    if not full:
        items = [public_item(topic, item) for item in items]
    tp = (topic, partition)
    return [
        ServerSentEvent(
            data=orjson.dumps(item).decode(),
            event=topic,
            id=positions.event_id(tp, offset, i)
            if positions
            else f"{topic}:{partition}:{offset}:{i}",
        )
        for i, item in enumerate(items)
        if i > after_item
        and (domain is None or (isinstance(item, dict) and item.get("domain") == domain))
    ]


async def _place(
    consumer: AIOKafkaConsumer, name: str, last_event_id: str | None, max_records: int
) -> tuple[dict[TP, int], tuple[TP, int, int] | None, list[str]]:
    """Assign every partition of the stream and seek: to the end for a new client, to where
    ``last_event_id`` left off for a returning one. Returns the start positions, the record
    whose first items were already delivered, and what could not be replayed."""
    await consumer.topics()  # fetches the metadata of every topic
    tps = [
        TopicPartition(spec.name, p)
        for spec in STREAMS[name]
        for p in sorted(consumer.partitions_for_topic(spec.name) or ())
    ]
    consumer.assign(tps)
    latest = {(tp.topic, tp.partition): o for tp, o in (await consumer.end_offsets(tps)).items()}
    start, delivered, gaps = dict(latest), None, []
    if last_event_id:
        try:
            last = parse_event_id(last_event_id)
        except UnreadableEventId as exc:
            gaps = [f"{exc}; starting from now"]
        else:
            earliest = await consumer.beginning_offsets(tps)
            plan = plan_resume(
                list(latest),
                last,
                {(tp.topic, tp.partition): o for tp, o in earliest.items()},
                latest,
                max_records,
            )
            start, delivered, gaps = plan.seek, plan.delivered, plan.gaps
    for tp in tps:
        consumer.seek(tp, start[(tp.topic, tp.partition)])
    return start, delivered, gaps


async def _tail(
    request: Request,
    bootstrap: str,
    name: str,
    domain: str | None,
    full: bool = True,
    last_event_id: str | None = None,
) -> AsyncIterator[ServerSentEvent]:
    settings = request.app.state.settings
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        # A resumed position whose records expired meanwhile: replay what is left.
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    LIVE_CLIENTS.labels(name).inc()
    _open[name] = _open.get(name, 0) + 1
    try:
        start, delivered, gaps = await _place(
            consumer, name, last_event_id, settings.api_live_resume_max_records
        )
        positions = Positions(start)
        opening = {"stream": name, "resumed": bool(last_event_id) and not gaps}
        yield ServerSentEvent(data=orjson.dumps(opening).decode(), event=READY,
                              id=positions.opening_id(), retry=2000)  # fmt: skip
        if gaps:
            log.info("live client resumed with gaps stream=%s gaps=%s", name, gaps)
            yield ServerSentEvent(data=orjson.dumps({"missed": gaps}).decode(), event=RESYNC)
        while not await request.is_disconnected():
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for tp, records in batches.items():
                key = (tp.topic, tp.partition)
                for r in records:
                    after = delivered[2] if delivered and (key, r.offset) == delivered[:2] else -1
                    for event in events_of(
                        tp.topic, tp.partition, r.offset, r.value, domain, full, positions, after
                    ):
                        yield event
                    positions.done(key, r.offset)
    finally:
        LIVE_CLIENTS.labels(name).dec()
        _open[name] -= 1
        await consumer.stop()


@router.get(
    "/{stream}",
    summary="Server-Sent Events of a stream, from now on",
    description="Streams: " + ", ".join(STREAMS) + ". Each event is one JSON item; its `event` "
    "is the topic and its `id` topic:partition:offset:item~positions. The stream opens with a "
    f"`{READY}` event. Reconnecting with `Last-Event-ID` (or `last_event_id`) resumes after "
    f"that event; what cannot be replayed is announced by a `{RESYNC}` event. A comment line "
    "keeps idle connections open every 15 s. 503 with Retry-After when too many clients are "
    "connected.",
    response_class=EventSourceResponse,
)
async def live(
    request: Request,
    stream: str,
    domain: Annotated[str | None, Query(max_length=64, description="alarms of one domain")] = None,
    last_event_id: Annotated[
        str | None,
        Query(max_length=4096, description="resume after this event (as the Last-Event-ID header)"),
    ] = None,
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
    resume = request.headers.get("last-event-id") or last_event_id
    return EventSourceResponse(_tail(request, bootstrap, stream, domain, full, resume), ping=15)
