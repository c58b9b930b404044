"""Building and running the processes: worker, API, connectors; and all of them in one (up)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import aiomqtt
import faust
import uvicorn
from aiokafka.errors import KafkaConnectionError

from api.app import create_api
from api.commands import KafkaEventPublisher
from connectors.base import Source, SourceError, run_source
from connectors.flood_simulator import FloodSimulator
from connectors.mqtt_bridge import mqtt_address
from connectors.publisher import KafkaPublisher
from connectors.tally import NothingUsable
from schemas.access import exposure_problem, is_loopback
from schemas.alarm_rules import RuleBook, RuleBookError, load_rules
from schemas.alarms import AlarmCommand
from schemas.catalog import (
    CAMERA_EVENTS,
    DEAD_LETTER,
    FLOOD_REPORTS,
    GAUGE_READINGS,
    PRICE_OBSERVATIONS,
    REPORT_CONTACTS,
    REPORT_EVENTS,
    SOURCE_HEARTBEATS,
    TENDER_EVENTS,
    TRAFFIC_OBSERVATIONS,
    TRUCK_POSITIONS,
    VEHICLE_POSITIONS,
    TopicSpec,
)
from schemas.cctv import load_cameras
from schemas.flood import load_stations
from schemas.prices import load_commodities, load_markets
from schemas.reports import Routing, RoutingError, load_routing
from schemas.settings import Settings
from schemas.spatial import gazetteer
from schemas.traffic import load_segments
from schemas.warehouse import Warehouse
from schemas.waste import load_sites
from sitroom.kafka_admin import broker_reachable, cluster_id
from streams.agents import FaustProducer, consumer_highwater, register_pipeline
from streams.app import create_app
from streams.batch_consumer import BatchConsumer
from streams.cctv_logic import cctv_pipeline
from streams.checkpoints import CheckpointStore
from streams.commands import consume_commands
from streams.deadletter_logic import deadletter_pipeline
from streams.flood_stream import flood_pipeline
from streams.pipeline import Pipeline
from streams.pipeline_types import Message
from streams.prices_logic import prices_pipeline
from streams.procurement_logic import procurement_pipeline
from streams.reports_logic import reports_pipeline
from streams.sink import ClickHouseSink
from streams.sources_logic import sources_pipeline
from streams.traffic_logic import traffic_pipeline
from streams.transit_logic import TransitRules
from streams.transit_stream import transit_pipeline
from streams.waste_logic import waste_pipeline

log = logging.getLogger(__name__)

BROKER_ADDRESS_FILE = "broker.address"


class ConfigError(RuntimeError):
    """A setting is missing or contradictory; the message says which and how to fix it."""


def resolve_bootstrap(settings: Settings) -> str:
    """SITROOM_KAFKA_BOOTSTRAP, else the broker of a running `sitroom up` on this data dir."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    address = settings.data_dir / BROKER_ADDRESS_FILE
    if address.exists():
        return address.read_text().strip()
    raise ConfigError(
        "no broker: set SITROOM_KAFKA_BOOTSTRAP=host:port, or start `sitroom up` "
        f"(it writes its broker address to {address})"
    )


def load_rule_book(settings: Settings) -> RuleBook:
    """The alarm rule book, checked (no zero divisors, no inverted ladders): a bad one stops
    the start with one line naming the file and the field, not a crash on every batch."""
    try:
        return load_rules(settings.alarm_rules)
    except RuleBookError as exc:
        raise ConfigError(f"bad alarm rule book: {exc}") from exc


def load_report_routing(settings: Settings) -> Routing:
    try:
        return load_routing(settings.report_routing)
    except RoutingError as exc:
        raise ConfigError(f"bad report routing: {exc}") from exc


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """chdb allows one process per data directory: fail early and clearly on a second one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(data_dir / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise ConfigError(
            f"{data_dir} is in use by another sitroom process (the embedded ClickHouse "
            "allows one process per data directory); stop it or set SITROOM_DATA_DIR"
        ) from exc
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


# A worker allocates a few container objects per event and holds many long-lived ones
# (every vehicle's state); with CPython's default thresholds (700, 10, 10) the collector
# walks that state again and again, which cost a third of the per-event time (measured:
# 30k → 45k events/s of transit logic). Fewer young collections, and the objects of start-up
# moved out of the collector's sight (gc.freeze), keep its cost small. A batch of 8,000
# messages keeps ~80,000 young containers (records, rows) alive until it is written: at
# 50,000 a young collection walked them mid-batch (twelve of ~12 ms per 200,000 events);
# at 200,000 it comes every few batches, when most of them are gone.
GC_THRESHOLDS = (200_000, 20, 100)


def tune_gc() -> None:
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class WorkerService:
    """The faust worker with the transit pipeline, started inside the caller's event loop."""

    def __init__(self, settings: Settings, bootstrap: str, warehouse: Warehouse) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.warehouse = warehouse
        self.app: faust.App | None = None
        self._commands: asyncio.Task[None] | None = None
        self.pipelines: list[Pipeline] = []
        self.batch: BatchConsumer | None = None

    async def start(self) -> None:
        book = load_rule_book(self.settings)  # before anything starts: a bad book stops here
        routing = load_report_routing(self.settings)
        await self.warehouse.ensure_schema(
            raw_ttl_days=self.settings.raw_ttl_days,
            plate_retention_days=self.settings.plate_retention_days,
        )
        cluster = await cluster_id(self.bootstrap)
        app = create_app(self.settings, self.bootstrap)
        producer, highwater = FaustProducer(app), consumer_highwater(app)

        def sink() -> ClickHouseSink:
            return ClickHouseSink(
                self.warehouse, self.settings.sink_max_rows, self.settings.sink_max_delay_s
            )

        checkpoints = CheckpointStore(self.warehouse, cluster, self.settings.app_id)
        transit = transit_pipeline(
            self.settings, sink(), checkpoints, producer, highwater,
            rules=TransitRules.from_settings(self.settings, book),
        )  # fmt: skip
        flood = flood_pipeline(
            self.settings,
            book,
            load_stations(),
            gazetteer(),
            sink(),
            checkpoints,
            producer,
            highwater,
        )
        traffic = traffic_pipeline(
            self.settings,
            book,
            load_segments(),
            gazetteer(),
            sink(),
            checkpoints,
            producer,
            highwater,
        )
        cctv = cctv_pipeline(
            self.settings,
            book,
            load_cameras(),
            gazetteer(),
            sink(),
            checkpoints,
            producer,
            highwater,
        )
        waste = waste_pipeline(
            self.settings, book, load_sites(), sink(), checkpoints, producer, highwater
        )
        sources = sources_pipeline(self.settings, book, sink(), checkpoints, producer, highwater)
        letters = deadletter_pipeline(
            self.settings, book, sink(), checkpoints, producer, highwater, cluster_id=cluster
        )
        tick_s = self.settings.stream_tick_s
        batch = BatchConsumer(app, self.settings, self.bootstrap, loop=asyncio.get_running_loop())
        app.add_dependency(batch)
        self.batch = batch

        def register(pipeline: Pipeline, specs: list[TopicSpec]) -> None:
            register_pipeline(app, self.settings, pipeline, specs, tick_s, batch)

        register(sources, [SOURCE_HEARTBEATS])
        register(letters, [DEAD_LETTER])
        register(transit, [VEHICLE_POSITIONS])
        register(flood, [GAUGE_READINGS, FLOOD_REPORTS])
        register(traffic, [TRAFFIC_OBSERVATIONS])
        register(cctv, [CAMERA_EVENTS])
        register(waste, [TRUCK_POSITIONS])
        reports = reports_pipeline(
            self.settings, book, routing, gazetteer(),
            sink(), checkpoints, producer, REPORT_CONTACTS.name, highwater,
        )  # fmt: skip
        register(reports, [REPORT_EVENTS, REPORT_CONTACTS])
        self.pipelines = [transit, flood, traffic, cctv, waste, sources, letters]
        self.pipelines.append(reports)
        procurement = procurement_pipeline(
            self.settings, book, sink(), checkpoints, producer, highwater
        )
        register(procurement, [TENDER_EVENTS])
        self.pipelines.append(procurement)
        prices = prices_pipeline(
            self.settings, book, load_markets(), load_commodities(), gazetteer(),
            sink(), checkpoints, producer, highwater,
        )  # fmt: skip
        register(prices, [PRICE_OBSERVATIONS])
        self.pipelines.append(prices)
        self.app = app
        await app.start()
        tune_gc()
        self._commands = asyncio.create_task(
            consume_commands(self.bootstrap, self._apply_commands), name="alarm-commands"
        )
        log.info(
            "worker started",
            extra={
                "bootstrap": self.bootstrap,
                "group": self.settings.app_id,
                "cluster_id": cluster,
            },
        )

    def assignment(self) -> set[tuple[str, int]]:
        """The partitions this worker owns now, on faust's consumer and the batch one."""
        if self.app is None:
            return set()
        tps = set(self.app.consumer.assignment())
        if self.batch is not None:
            tps |= self.batch.assignment()
        return {(tp.topic, tp.partition) for tp in tps}

    async def _apply_commands(self, commands: list[AlarmCommand], origins: list[Message]) -> None:
        for pipeline in self.pipelines:
            await pipeline.apply_commands(commands, origins)

    def crashed(self) -> BaseException | None:
        if self.app is None:
            return None
        if self._commands is not None and self._commands.done() and not self._commands.cancelled():
            return self._commands.exception()
        return self.app.crash_reason  # type: ignore[no-any-return]

    async def stop(self) -> None:
        if self._commands is not None:
            self._commands.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._commands
            self._commands = None
        if self.app is None:
            return
        app, self.app = self.app, None
        if app.crash_reason is not None:
            # The failed batch is never acknowledged, so waiting for the streams to drain
            # would wait forever; its messages replay after the restart.
            app.conf.stream_wait_empty = False
        try:
            await asyncio.wait_for(app.stop(), 30)
        except Exception:
            # A crashed faust app may fail to drain its consumer; the offsets it committed
            # are all behind stored rows, so nothing is lost by giving up here.
            log.warning("worker did not stop cleanly", exc_info=True)


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def api_server(
    settings: Settings, warehouse: Warehouse, bootstrap: str, commands: KafkaEventPublisher
) -> _ApiServer:
    async def probe() -> bool:
        return await broker_reachable(bootstrap)

    check_api_exposure(settings)
    try:
        app = create_api(settings, warehouse, probe, commands)
    except ValueError as exc:  # e.g. an unreadable API tokens file
        raise ConfigError(str(exc)) from exc
    return _ApiServer(api_config(settings, app))


def api_config(settings: Settings, app: Any) -> uvicorn.Config:
    """uvicorn's own proxy-headers middleware sets the client address from X-Forwarded-For
    when the peer is a trusted proxy; the intake limit then counts per citizen."""
    return uvicorn.Config(
        app, host=settings.api_host, port=settings.api_port, log_config=None, access_log=False,
        proxy_headers=True, forwarded_allow_ips=settings.api_forwarded_allow_ips,
    )  # fmt: skip


def check_api_exposure(settings: Settings, warn: bool = True) -> None:
    """Refuse an API open to the network; say so at every start when it is open on purpose."""
    problem = exposure_problem(settings.api_host, settings.api_tokens_file, settings.api_open)
    if problem:
        raise ConfigError(problem)
    if warn and settings.api_tokens_file is None and not is_loopback(settings.api_host):
        log.warning(
            "API open to the network without tokens (SITROOM_API_OPEN=true): anyone who "
            "reaches it can clear alarms and move citizens' reports",
            extra={"host": settings.api_host, "port": settings.api_port},
        )


def bound_port(server: uvicorn.Server) -> int:
    return int(server.servers[0].sockets[0].getsockname()[1])


async def wait_for_stop(
    watch: list[asyncio.Task[Any]],
    worker: WorkerService | None = None,
    exit_when_done: bool = False,
) -> int:
    """Block until SIGINT/SIGTERM, a watched task fails, or the worker crashes; return the exit
    code. With ``exit_when_done``, also return once every watched task has finished."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            for task in watch:
                if task.done():
                    exc = task.exception() if not task.cancelled() else None
                    if isinstance(exc, ConfigError):
                        raise exc  # the command line says it in one line, exit code 2
                    if isinstance(exc, NothingUsable | SourceError):
                        # The input's fault, said in one line: no traceback to read past.
                        log.error(str(exc), extra={"task": task.get_name()})
                        return 1
                    if exc is not None:
                        log.error("component failed", extra={"task": task.get_name()}, exc_info=exc)
                        return 1
                    log.info("component finished", extra={"task": task.get_name()})
                    watch.remove(task)
            if exit_when_done and not watch:
                return 0
            if worker is not None and worker.crashed() is not None:
                log.error("worker crashed", exc_info=worker.crashed())
                return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        log.info("stop requested")
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _start(publisher: KafkaPublisher, bootstrap: str) -> None:
    try:
        await publisher.start()
    except KafkaConnectionError as exc:
        await publisher.stop()
        raise ConfigError(
            f"cannot reach Kafka at {bootstrap} ({exc}); check SITROOM_KAFKA_BOOTSTRAP"
            " or start `sitroom up`"
        ) from exc


async def run_connector(source: Source, bootstrap: str, heartbeat_s: float | None = 15.0) -> int:
    publisher = KafkaPublisher(bootstrap, source.name, heartbeat_s)
    await _start(publisher, bootstrap)
    try:
        return await run_source(source, publisher)
    finally:
        await publisher.stop()


async def run_flood_simulator(settings: Settings, bootstrap: str, **kwargs: Any) -> int:
    """The flood gauges' simulator: readings over MQTT, citizens' reports to Kafka."""
    host, port = mqtt_address(settings.mqtt_url)
    simulator = FloodSimulator(
        load_stations(),
        seed=settings.sim_seed,
        interval_s=settings.flood_sim_interval_s,
        rise_cm_per_min=settings.flood_sim_rise_cm_per_min,
        start=kwargs.pop("start", None),
        prefix=settings.mqtt_prefix,
    )
    publisher = KafkaPublisher(bootstrap, simulator.name, settings.source_heartbeat_s)
    await _start(publisher, bootstrap)
    try:
        return await simulator.run(host, port, publisher, **kwargs)
    finally:
        await publisher.stop()


async def keep_running(
    name: str, factory: Callable[[], Awaitable[Any]], retry_s: float = 5.0
) -> None:
    """Run an optional side component, restarting it when it fails (e.g. MQTT is down)."""
    while True:
        try:
            await factory()
            return
        except (aiomqtt.MqttError, OSError) as exc:
            log.warning(
                "component failed, retrying",
                extra={"component": name, "error": str(exc), "retry_in_s": retry_s},
            )
            await asyncio.sleep(retry_s)
