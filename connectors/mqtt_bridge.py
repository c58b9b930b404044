"""A generic MQTT → Kafka bridge: topic patterns with named segments, validated events.

A route like ``semarang/flood/{station_id}/{kind}`` subscribes to ``semarang/flood/+/+``;
the named segments join the JSON payload's fields (the topic wins on a clash) and the
result must validate against the Kafka topic's schema. Payloads that are not JSON objects
or fail validation are dead-lettered with the reason and the MQTT topic.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiomqtt
import orjson
from pydantic import BaseModel, ValidationError

from connectors.base import Source
from connectors.metrics import FETCH_ERRORS
from connectors.publisher import KafkaPublisher
from schemas.catalog import GAUGE_READINGS, TopicSpec

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route:
    pattern: str
    spec: TopicSpec
    key_field: str

    def mqtt_filter(self) -> str:
        return _SEGMENT.sub("+", self.pattern)

    def match(self, topic: str) -> dict[str, str] | None:
        pattern, parts = self.pattern.split("/"), topic.split("/")
        if len(pattern) != len(parts):
            return None
        fields: dict[str, str] = {}
        for p, t in zip(pattern, parts, strict=True):
            named = _SEGMENT.fullmatch(p)
            if named:
                fields[named.group(1)] = t
            elif p != t:
                return None
        return fields


def flood_route(prefix: str = "semarang") -> Route:
    return Route(f"{prefix}/flood/{{station_id}}/{{kind}}", GAUGE_READINGS, "station_id")


def mqtt_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in {"mqtt", "tcp"} or not parts.hostname:
        raise ValueError(f"expected mqtt://host:port, got {url!r}")
    return parts.hostname, parts.port or 1883


def to_event(route: Route, topic: str, payload: bytes) -> tuple[BaseModel | None, str, str]:
    """The event for an MQTT message, or None with (reason, detail)."""
    fields = route.match(topic)
    if fields is None:
        return None, "unrouted_topic", f"{topic} does not match {route.pattern}"
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return None, "invalid_json", f"{topic}: {exc}"
    if not isinstance(data, dict):
        return None, "schema_violation", f"{topic}: payload is not a JSON object"
    assert route.spec.schema is not None
    try:
        return route.spec.schema.model_validate({**data, **fields, "source": "mqtt"}), "", ""
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        return None, "schema_violation", f"{topic}: {detail}"


def client_id_for(route: Route) -> str:
    """A stable MQTT client id per route, so the broker keeps the bridge's session (and
    queues its messages) across restarts; two bridges on one route must not share it."""
    return "sitroom-bridge-" + re.sub(r"[^A-Za-z0-9]+", "-", route.pattern.split("/{")[0]).strip(
        "-"
    )


class MqttBridge(Source):
    """At least once from MQTT to Kafka: a persistent session (``clean_session`` off, a
    stable client id) makes the broker queue QoS 1 messages while the bridge is away, and a
    message is acknowledged to the broker only after Kafka has it (or its dead letter), so
    a crash in between gets it redelivered rather than lost."""

    name = "mqtt-bridge"

    def __init__(self, url: str, route: Route, reconnect_s: float = 2.0,
                 client_id: str | None = None, persistent: bool = True,
                 max_batch: int = 500) -> None:  # fmt: skip
        self.host, self.port = mqtt_address(url)
        self.route = route
        self.topic = route.spec
        self.reconnect_s = reconnect_s
        self.client_id = client_id or client_id_for(route)
        self.persistent = persistent
        self.max_batch = max_batch
        self.subscribed = asyncio.Event()

    def key(self, event: BaseModel) -> str:
        return str(getattr(event, self.route.key_field))

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        while True:
            try:
                client = aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=self.client_id,
                    clean_session=not self.persistent,
                )
                # aiomqtt has no manual acks yet (empicano/aiomqtt#345); paho's own switch, as
                # its maintainers' workaround does, makes acks ours to send. Set before
                # connecting: a resumed session delivers its queue right after CONNACK.
                paho = client._client
                paho.manual_ack_set(True)
                async with client:
                    await client.subscribe(self.route.mqtt_filter(), qos=1)
                    self.subscribed.set()
                    log.info(
                        "mqtt subscribed",
                        extra={
                            "broker": f"{self.host}:{self.port}",
                            "filter": self.route.mqtt_filter(),
                        },
                    )
                    messages = client.messages
                    async for first in messages:
                        # Whatever else has arrived goes in the same Kafka batch: one round trip
                        # per burst keeps up with a burst, so the broker's per-client queue of
                        # unacknowledged messages (Mosquitto max_queued_messages) never overflows.
                        batch = [first]
                        for _ in range(min(len(messages), self.max_batch - 1)):
                            batch.append(await anext(messages))
                        events = []
                        for message in batch:
                            payload = (
                                message.payload
                                if isinstance(message.payload, bytes)
                                else str(message.payload).encode()
                            )
                            event, reason, detail = to_event(
                                self.route, str(message.topic), payload
                            )
                            if event is None:
                                await publisher.dead_letter(
                                    payload, reason, detail, f"mqtt:{message.topic}"
                                )
                            else:
                                events.append(event)
                        if events:
                            yield events  # resumes once Kafka has the batch
                        for message in batch:
                            paho.ack(message.mid, message.qos)
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                FETCH_ERRORS.labels(self.name).inc()
                log.warning(
                    "mqtt connection lost, reconnecting",
                    extra={
                        "broker": f"{self.host}:{self.port}",
                        "error": str(exc),
                        "retry_in_s": self.reconnect_s,
                    },
                )
                await asyncio.sleep(self.reconnect_s)
