"""GTFS-realtime VehiclePositions: replay of captured files or polling of a live feed.

Real feeds are untidy, so the mapping is forgiving where the spec allows it: an empty
``vehicle.id`` falls back to the vehicle label, then to the entity id; a position without
a timestamp takes the feed header's. Entities that still cannot become a position are
dead-lettered with the reason. ``position.speed`` is metres per second in the spec.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2
from pydantic import BaseModel, ValidationError

from connectors.base import Source, SourceError
from connectors.metrics import FETCH_ERRORS
from connectors.publisher import KafkaPublisher
from schemas.catalog import VEHICLE_POSITIONS
from schemas.transit import VehiclePosition

log = logging.getLogger(__name__)

OCCUPANCY_NAMES = gtfs_realtime_pb2.VehiclePosition.OccupancyStatus


def parse_feed(
    data: bytes, source: str = "gtfs-rt"
) -> tuple[list[VehiclePosition], list[tuple[str, str, bytes]]]:
    """Decode a FeedMessage into positions and rejects ``(reason, detail, entity bytes)``."""
    feed = gtfs_realtime_pb2.FeedMessage()
    try:
        feed.ParseFromString(data)
    except DecodeError as exc:
        raise SourceError(f"not a GTFS-realtime FeedMessage: {exc}") from exc
    header_ts = feed.header.timestamp if feed.header.HasField("timestamp") else None
    positions: list[VehiclePosition] = []
    rejects: list[tuple[str, str, bytes]] = []
    for entity in feed.entity:
        if not entity.HasField("vehicle"):
            continue  # trip updates and alerts share the feed type
        vp = entity.vehicle
        raw = entity.SerializeToString()
        if not vp.HasField("position"):
            rejects.append(("no_position", f"entity {entity.id!r} has no position", raw))
            continue
        vehicle_id = vp.vehicle.id or vp.vehicle.label or entity.id
        ts = vp.timestamp if vp.HasField("timestamp") and vp.timestamp else header_ts
        if ts is None:
            rejects.append(
                ("no_timestamp", f"entity {entity.id!r}: no timestamp, none in header", raw)
            )
            continue
        pos = vp.position
        try:
            positions.append(
                VehiclePosition(
                    vehicle_id=vehicle_id,
                    label=vp.vehicle.label or None,
                    route_id=vp.trip.route_id or None,
                    trip_id=vp.trip.trip_id or None,
                    lat=pos.latitude,
                    lon=pos.longitude,
                    bearing=pos.bearing if pos.HasField("bearing") else None,
                    speed_kmh=pos.speed * 3.6 if pos.HasField("speed") else None,
                    timestamp=datetime.fromtimestamp(ts, UTC),
                    occupancy=OCCUPANCY_NAMES.Name(vp.occupancy_status)
                    if vp.HasField("occupancy_status")
                    else None,
                    source=source,
                )
            )
        except ValidationError as exc:
            rejects.append(
                ("schema_violation", f"entity {entity.id!r}: {exc.errors()[0]['msg']}", raw)
            )
    return positions, rejects


class GtfsRtSource(Source):
    name = "gtfs-rt"
    topic = VEHICLE_POSITIONS

    def __init__(
        self,
        files: Sequence[Path] = (),
        url: str | None = None,
        interval_s: float = 15.0,
        max_polls: int | None = None,
    ) -> None:
        if not files and not url:
            raise ValueError("give --file PATH (one or more) or --url URL")
        self.files = list(files)
        self.url = url
        self.finite = bool(self.files)
        self.interval_s = interval_s
        self.max_polls = max_polls

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, VehiclePosition)
        return event.vehicle_id

    async def _decode(
        self, data: bytes, where: str, publisher: KafkaPublisher
    ) -> list[VehiclePosition]:
        positions, rejects = parse_feed(data, source=self.name)
        for reason, detail, raw in rejects:
            await publisher.dead_letter(raw, reason, detail, where)
        log.info(
            "feed decoded",
            extra={
                "connector": self.name,
                "source": where,
                "positions": len(positions),
                "rejected": len(rejects),
            },
        )
        return positions

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        for i, path in enumerate(self.files, 1):
            log.info(
                "replaying file",
                extra={"connector": self.name, "file": str(path), "n": i, "of": len(self.files)},
            )
            try:
                data = path.read_bytes()
                yield await self._decode(data, str(path), publisher)
            except SourceError as exc:
                await publisher.dead_letter(
                    path.read_bytes(), "undecodable_feed", str(exc), str(path)
                )
        if self.url:
            async for batch in self._poll(self.url, publisher):
                yield batch

    async def _poll(
        self, url: str, publisher: KafkaPublisher
    ) -> AsyncIterator[Sequence[BaseModel]]:
        polls = 0
        last_header: bytes | None = None
        async with httpx.AsyncClient(timeout=30.0, follow_redirects=True) as client:
            while self.max_polls is None or polls < self.max_polls:
                polls += 1
                wait = self.interval_s
                try:
                    response = await client.get(url)
                    if response.status_code == 429 or response.status_code >= 500:
                        retry = response.headers.get("retry-after", "")
                        raise SourceError(
                            f"feed answered {response.status_code}",
                            retry_after=float(retry) if retry.isdigit() else None,
                        )
                    response.raise_for_status()
                    data = response.content
                    header = data[:64]
                    if header != last_header:  # an unchanged feed would only repeat itself
                        last_header = header
                        yield await self._decode(data, url, publisher)
                except (httpx.HTTPError, SourceError) as exc:
                    FETCH_ERRORS.labels(self.name).inc()
                    retry_after = getattr(exc, "retry_after", None)
                    wait = max(wait, retry_after or 0.0)
                    log.warning(
                        "feed fetch failed",
                        extra={
                            "connector": self.name,
                            "url": url,
                            "error": str(exc),
                            "retry_in_s": wait,
                        },
                    )
                await asyncio.sleep(wait)
