"""GTFS-realtime VehiclePositions: replay of captured files or polling of a live feed.

Real feeds are untidy, so the mapping is forgiving where the spec allows it: an empty
``vehicle.id`` falls back to the vehicle label, then to the entity id; a position without
a timestamp takes the feed header's. Entities that still cannot become a position are
dead-lettered with the reason. ``position.speed`` is metres per second in the spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
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
from schemas.deadletter import validation_detail
from schemas.transit import VehiclePosition

log = logging.getLogger(__name__)

OCCUPANCY_NAMES = gtfs_realtime_pb2.VehiclePosition.OccupancyStatus


@dataclass
class ParsedFeed:
    positions: list[VehiclePosition]
    rejects: list[tuple[str, str, bytes]]  # (reason, detail, entity bytes)
    header_ts: int | None
    held: Counter[str]  # entity kinds: vehicle, trip_update, alert, ...

    def skipped(self) -> Counter[str]:
        """Entities that are not vehicle positions, left out on purpose."""
        return Counter({k: n for k, n in self.held.items() if k not in ("vehicle", "deleted")})


def describe(held: Counter[str]) -> str:
    """What a feed held, in words: "12 trip updates, 1 alert"."""
    if not held:
        return "no entities"
    return ", ".join(f"{n:,} {ENTITY_WORDS.get(k, k)}{'' if n == 1 else 's'}"
                     for k, n in held.most_common())  # fmt: skip


ENTITY_WORDS = {
    "vehicle": "vehicle position",
    "vehicle_without_position": "vehicle without position",
    "trip_update": "trip update",
    "alert": "alert",
    "deleted": "deleted entity",
    "empty": "empty entity",
}


def parse_feed(data: bytes, source: str = "gtfs-rt") -> ParsedFeed:
    """Decode a FeedMessage into positions, rejects and a census of what it held."""
    feed = gtfs_realtime_pb2.FeedMessage()
    try:
        feed.ParseFromString(data)
    except DecodeError as exc:
        raise SourceError(
            f"not a GTFS-realtime FeedMessage ({len(data):,} bytes starting {data[:16]!r}): {exc}"
        ) from exc
    if not feed.HasField("header"):
        # Protobuf reads zero bytes as an empty message; a feed always has a header.
        raise SourceError(f"not a GTFS-realtime FeedMessage: no header ({len(data):,} bytes)")
    header_ts = feed.header.timestamp if feed.header.HasField("timestamp") else None
    positions: list[VehiclePosition] = []
    rejects: list[tuple[str, str, bytes]] = []
    held: Counter[str] = Counter()
    for entity in feed.entity:
        if not entity.HasField("vehicle"):
            held[_kind(entity)] += 1  # trip updates and alerts share the feed type
            continue
        vp = entity.vehicle
        raw = entity.SerializeToString()
        if not vp.HasField("position"):
            held["vehicle_without_position"] += 1
            rejects.append(("no_position", f"entity {entity.id!r} has no position", raw))
            continue
        held["vehicle"] += 1
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
                ("schema_violation", f"entity {entity.id!r}: {validation_detail(exc)}", raw)
            )
    return ParsedFeed(positions, rejects, header_ts, held)


def _kind(entity: gtfs_realtime_pb2.FeedEntity) -> str:
    if entity.is_deleted:
        return "deleted"
    for kind in ("trip_update", "alert", "shape", "stop", "trip_modifications"):
        with contextlib.suppress(ValueError):  # older bindings lack the newer kinds
            if entity.HasField(kind):
                return kind
    return "empty"


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
        self.held: Counter[str] = Counter()  # every entity kind read, over all inputs
        self.undecodable: list[str] = []  # "where: why", one per input

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, VehiclePosition)
        return event.vehicle_id

    def emptiness(self) -> str:
        if self.undecodable and not self.held:
            return "; ".join(self.undecodable)
        return f"the feed held {describe(self.held)} and no vehicle position"

    async def _decode(
        self, feed: ParsedFeed, where: str, publisher: KafkaPublisher
    ) -> list[VehiclePosition]:
        self.held.update(feed.held)
        for kind, n in feed.skipped().items():
            publisher.skip(kind, n)
        for reason, detail, raw in feed.rejects:
            await publisher.dead_letter(raw, reason, detail, where)
        context = {"connector": self.name, "source": where, "positions": len(feed.positions),
                   "rejected": len(feed.rejects), "held": dict(feed.held)}  # fmt: skip
        if feed.positions:
            log.info("feed decoded", extra=context)
        else:
            log.warning(f"no vehicle position in {where}: it held {describe(feed.held)}",
                        extra=context)  # fmt: skip
        return feed.positions

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        for i, path in enumerate(self.files, 1):
            log.info(
                "replaying file",
                extra={"connector": self.name, "file": str(path), "n": i, "of": len(self.files)},
            )
            data = path.read_bytes()
            try:
                feed = parse_feed(data, source=self.name)
            except SourceError as exc:
                self.undecodable.append(f"{path}: {exc}")
                log.error(f"cannot read {path}: {exc}", extra={"connector": self.name})
                await publisher.dead_letter(data, "undecodable_feed", str(exc), str(path))
                continue
            yield await self._decode(feed, str(path), publisher)
        if self.url:
            async for batch in self._poll(self.url, publisher):
                yield batch
        if self.undecodable:
            # The rest was published; the exit status still says that input was lost.
            raise SourceError(
                f"{len(self.undecodable)} of {len(self.files)} file(s) undecodable: "
                + "; ".join(self.undecodable)
            )

    async def _poll(
        self, url: str, publisher: KafkaPublisher
    ) -> AsyncIterator[Sequence[BaseModel]]:
        polls = 0
        last_version: tuple[str, object] | None = None
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
                    feed = parse_feed(response.content, source=self.name)
                    version = _version(feed, response.content)
                    if version == last_version:
                        # An unchanged feed would only repeat itself.
                        publisher.skip("unchanged_feed", sum(feed.held.values()))
                    else:
                        last_version = version
                        yield await self._decode(feed, url, publisher)
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


def _version(feed: ParsedFeed, data: bytes) -> tuple[str, object]:
    """A snapshot's identity: the header timestamp, which the spec says is when the feed's
    content was created (bytes differ between fetches of one snapshot on some servers, and
    one leading block of bytes is the same for different snapshots); a hash of the bytes
    only when the header has no timestamp."""
    if feed.header_ts:
        return ("header", feed.header_ts)
    return ("sha256", hashlib.sha256(data).hexdigest())
