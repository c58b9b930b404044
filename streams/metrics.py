"""Prometheus metrics of the stream worker (process-wide, on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "sitroom_events_consumed_total", "Events consumed (items, not Kafka messages)", ["topic"]
)
MESSAGES_CONSUMED = Counter("sitroom_messages_consumed_total", "Kafka messages consumed", ["topic"])
EVENTS_PRODUCED = Counter("sitroom_events_produced_total", "Events produced", ["topic"])
DEAD_LETTERED = Counter(
    "sitroom_events_dead_lettered_total",
    "Events sent to the dead-letter topic",
    ["topic", "reason"],
)
BAD_FIXES = Counter(
    "sitroom_transit_bad_fixes_total", "GPS fixes rejected as implausible jumps", ["topic"]
)
IMPLAUSIBLE_REPORTED = Counter(
    "sitroom_transit_reported_speed_implausible_total",
    "Reported speeds above the plausibility limit, replaced by the derived speed",
    ["topic"],
)
SPEED_UNIT_SLIPS = Counter(
    "sitroom_transit_speed_unit_slips_total",
    "Sources found reporting speeds steadily 3.6x or 1/3.6x the derived ones (from then on "
    "their reported speeds are not used)",
    ["source", "verdict"],
)
LATE_EVENTS = Counter(
    "sitroom_late_events_total",
    "Events past the correction horizon (dead-lettered as late) or too old to move state",
    ["topic"],
)
STALE_EVENTS = Counter(
    "sitroom_stale_events_total", "Fixes not newer than the vehicle's last fix", ["topic"]
)
REPLAYED_SKIPPED = Counter(
    "sitroom_replayed_messages_skipped_total",
    "Messages already in the restored checkpoint, skipped after a restart",
    ["topic"],
)
ALARM_TRANSITIONS = Counter(
    "sitroom_alarm_transitions_total", "Alarm transitions emitted", ["kind", "state"]
)
SINK_ROWS = Counter("sitroom_sink_rows_written_total", "Rows written to ClickHouse", ["table"])
SINK_FLUSH_SECONDS = Histogram(
    "sitroom_sink_flush_seconds",
    "Time to write one batch to ClickHouse",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SINK_FAILURES = Counter(
    "sitroom_sink_flush_failures_total", "Failed ClickHouse writes (retried)", ["sink", "error"]
)
CONSUMER_LAG = Gauge(
    "sitroom_consumer_lag", "Messages behind the partition's high watermark", ["topic", "partition"]
)
BATCH_SECONDS = Histogram(
    "sitroom_batch_seconds",
    "Time to process one consumed batch end to end (logic, produce, sink, checkpoint)",
    ["topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

PROCESSING_ERRORS = Counter(
    "sitroom_processing_errors_total",
    "Items (or ticks) our own code failed on; items are dead-lettered as processing_error",
    ["pipeline"],
)
CHECKPOINT_BYTES = Gauge(
    "sitroom_checkpoint_bytes", "Size of the last saved state checkpoint", ["pipeline", "state"]
)
CORRECTIONS = Counter(
    "sitroom_window_corrections_total",
    "Late events that corrected an already emitted window (re-emitted with a higher version)",
    ["topic"],
)
DUPLICATES = Counter(
    "sitroom_duplicate_events_total", "Events already counted in their window, ignored", ["topic"]
)
EVICTED = Counter(
    "sitroom_entities_evicted_total",
    "Entities dropped from state after being quiet for the eviction time",
    ["pipeline"],
)
