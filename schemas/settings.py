"""The one settings object, read from the environment with the ``SITROOM_`` prefix.

It is built once by the command line (the composition root) and passed in; nothing reads
the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Semarang city with the Trans Semarang reach into Kabupaten Semarang (Ungaran) and Kendal.
SEMARANG_BBOX = (110.20, -7.20, 110.60, -6.85)


class BoundingBox(BaseModel):
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @model_validator(mode="after")
    def _ordered(self) -> BoundingBox:
        if self.min_lon >= self.max_lon or self.min_lat >= self.max_lat:
            raise ValueError("service area must be min_lon,min_lat,max_lon,max_lat with min < max")
        return self

    def contains(self, lon: float, lat: float) -> bool:
        return self.min_lon <= lon <= self.max_lon and self.min_lat <= lat <= self.max_lat


def parse_bbox(raw: object) -> BoundingBox | None:
    """Accept ``none``, ``min_lon,min_lat,max_lon,max_lat`` or an already-parsed box."""
    if raw is None or isinstance(raw, BoundingBox):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() in {"none", "off", ""}:
            return None
        parts = text.split(",")
        if len(parts) != 4:
            raise ValueError(f"expected 'min_lon,min_lat,max_lon,max_lat' or 'none', got {raw!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            raise ValueError(f"service area coordinates must be numbers: {raw!r}") from exc
        return BoundingBox(
            min_lon=values[0], min_lat=values[1], max_lon=values[2], max_lat=values[3]
        )
    if isinstance(raw, list | tuple) and len(raw) == 4:
        return BoundingBox(min_lon=raw[0], min_lat=raw[1], max_lon=raw[2], max_lat=raw[3])
    raise ValueError(f"cannot read a service area from {raw!r}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SITROOM_", extra="ignore")

    # Unset: `sitroom up` starts the embedded tansu broker.
    kafka_bootstrap: str | None = None
    # Unset: chdb in-process under `<data_dir>/clickhouse`.
    clickhouse_dsn: str | None = None
    data_dir: Path = Path(".sitroom")

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    # Proxies (comma-separated addresses or networks, "*" for any) whose X-Forwarded-For is
    # believed: behind an ingress every citizen would otherwise be the ingress, and share
    # one intake limit. Only name proxies the city runs.
    api_forwarded_allow_ips: str = "127.0.0.1"
    # Live (SSE) connections the API serves at once; each holds a Kafka consumer.
    api_live_max_clients: int = Field(50, ge=1)
    # A live client reconnecting with Last-Event-ID is replayed at most this many records
    # per partition; beyond that it is told to reload (a wall back after a night).
    api_live_resume_max_records: int = Field(10_000, ge=0)
    # The wall at /: a base-map tile URL ({z}/{x}/{y}, e.g. a city tile server); unset: no
    # tiles, the kecamatan polygons alone (the room's network may be closed).
    wall_tile_url: str | None = Field(None, pattern=r"^(https?://|/)\S*\{z\}\S*$")
    wall_tile_attribution: str = Field("", max_length=300)
    # Processes without the API (worker, connectors) serve /metrics here; 0 disables.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=0, le=65535)

    app_id: str = "sitroom-worker"
    topic_replication: int = Field(1, ge=1)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    service_area: Annotated[BoundingBox | None, NoDecode] = parse_bbox(
        ",".join(map(str, SEMARANG_BBOX))
    )
    max_future_s: float = Field(300.0, gt=0, description="events further ahead are rejected")

    # Transit.
    max_plausible_speed_kmh: float = Field(150.0, gt=0)
    # Alarm rules and per-domain thresholds (TOML); unset: the packaged default.
    alarm_rules: Path | None = None
    # Citizen reports: category → department and SLA (TOML); unset: the packaged default.
    report_routing: Path | None = None
    # Bearer tokens (TOML, SHA-256 hashes) for acknowledging alarms and moving reports;
    # unset: those actions are open (the embedded single-machine run).
    api_tokens_file: Path | None = None
    # Beyond loopback the API refuses to start without a tokens file unless this says the
    # open API is meant (and then warns at every start).
    api_open: bool = False
    # The room's own time zone: a time given without an offset (a query's `since`, a
    # citizen's report) is read in it, as the person who typed it meant.
    timezone: str = "Asia/Jakarta"
    # Every request body at most this large (413); citizens' intake (reports, flood
    # reports) at most this often per client on average, this many at once (429).
    api_max_body_bytes: int = Field(64 * 1024, ge=1024)
    api_intake_per_minute: float = Field(20.0, gt=0)
    api_intake_burst: int = Field(10, ge=1)
    # Analysts' SQL at /clickhouse (the embedded engine's ClickHouse HTTP interface): a
    # result larger, a query longer or hungrier than this fails with ClickHouse's own error.
    sql_max_rows: int = Field(100_000, ge=1)
    sql_max_seconds: float = Field(30.0, gt=0)
    sql_max_memory_bytes: int = Field(1 << 30, ge=1 << 20)

    # Event time, kept per entity (vehicle, segment, station, truck). Events up to the
    # lateness behind their entity's newest are exact; up to the correction horizon behind
    # its watermark they correct an emitted window (a new version of its row); older ones
    # are dead-lettered as `late`.
    window_allowed_lateness_s: float = Field(10.0, ge=0)
    correction_horizon_s: float = Field(300.0, ge=0)
    # Entities quiet this long (wall time) are dropped from state, their windows written first.
    entity_evict_after_s: float = Field(6 * 3600.0, gt=0)
    # How often every pipeline runs its periodic work (closing windows of quiet entities,
    # silence checks).
    stream_tick_s: float = Field(5.0, gt=0)
    # Raw event tables (positions, readings, camera events, geofence events, observations)
    # keep rows this long; aggregates and alarms are kept.
    raw_ttl_days: int = Field(400, ge=1)
    # Licence plates read by cameras are personal data: kept this long after the read, then
    # emptied (the event stays); readable only by staff meanwhile.
    plate_retention_days: int = Field(30, ge=1)

    # ClickHouse sink: a batch is at most this many Kafka messages or this old.
    sink_batch_messages: int = Field(500, ge=1)
    sink_max_rows: int = Field(20000, ge=1)
    sink_max_delay_s: float = Field(1.0, gt=0)
    # High-rate topics (streams/batch_consumer.py): one batch gathers what has been fetched
    # for up to this long, up to this many messages or bytes; every batch pays one insert
    # per table, one checkpoint and one commit, so a backlog is read in large batches.
    batch_gather_s: float = Field(0.1, ge=0)
    batch_max_messages: int = Field(20_000, ge=1)
    batch_max_bytes: int = Field(2 << 20, ge=1)
    # High-rate pipelines checkpoint their state at most this often, and commit offsets
    # only as far as a checkpoint reaches; rows are written with every batch. A crash
    # replays at most this much (rows and alarm ids come out the same).
    checkpoint_interval_s: float = Field(5.0, ge=0)

    # Connectors report liveness and their last event this often (sitroom.source-heartbeats).
    source_heartbeat_s: float = Field(15.0, gt=0)

    # MQTT broker of the sensor networks (flood gauges).
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    # Topics are <prefix>/flood/<station_id>/<kind>.
    mqtt_prefix: str = Field("semarang", min_length=1, pattern=r"^[^#+]+$")
    # The bridge's MQTT client id (its persistent session); unset: derived from the prefix.
    mqtt_client_id: str | None = Field(None, min_length=1, max_length=128)

    # Simulators.
    flood_sim_interval_s: float = Field(10.0, gt=0)
    flood_sim_rise_cm_per_min: float = Field(20.0, gt=0)
    sim_seed: int = 7
    sim_buses_per_corridor: int = Field(4, ge=1)
    sim_interval_s: float = Field(5.0, gt=0)

    @field_validator("service_area", mode="before")
    @classmethod
    def _bbox(cls, value: object) -> BoundingBox | None:
        return parse_bbox(value)

    @field_validator("wall_tile_url", mode="before")
    @classmethod
    def _no_tiles(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Asia/Jakarta)"
            ) from exc
        return value

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka_bootstrap

    def clickhouse_target(self) -> str:
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"
