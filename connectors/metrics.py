"""Prometheus metrics of connectors."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PUBLISHED = Counter(
    "sitroom_connector_events_published_total", "Events published", ["connector", "topic"]
)
REJECTED = Counter(
    "sitroom_connector_events_rejected_total",
    "Source records that could not become events (dead-lettered)",
    ["connector", "reason"],
)
LAST_EVENT = Gauge(
    "sitroom_connector_last_event_timestamp_seconds",
    "Unix time at which the connector last published an event",
    ["connector"],
)
FETCH_ERRORS = Counter(
    "sitroom_connector_fetch_errors_total", "Failed reads of the source (retried)", ["connector"]
)
SKIPPED = Counter(
    "sitroom_connector_records_skipped_total",
    "Source records read and left out on purpose (not errors), by reason",
    ["connector", "reason"],
)
