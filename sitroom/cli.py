"""The `sitroom` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client import start_http_server
from pydantic import ValidationError

from api.commands import KafkaEventPublisher
from connectors.base import Source
from connectors.brt_simulator import BrtSimulator
from connectors.cctv_simulator import CctvSimulator
from connectors.gtfs_rt import GtfsRtSource
from connectors.mqtt_bridge import MqttBridge, flood_route
from connectors.price_replay import PriceReplay
from connectors.price_simulator import PriceSimulator
from connectors.traffic_simulator import TrafficSimulator
from connectors.waste_simulator import WasteSimulator
from schemas.cctv import load_cameras
from schemas.export import export_json_schemas
from schemas.prices import load_commodities, load_markets
from schemas.settings import Settings
from schemas.traffic import load_segments
from schemas.warehouse import Warehouse, redact
from schemas.waste import load_sites
from sitroom import flood_cmd, procurement_cmd, reports_cmd, status_cmd, tokens_cmd
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.embedded_sources import embedded_sources
from sitroom.kafka_admin import create_topics
from sitroom.logs import configure_logging
from sitroom.runtime import (
    BROKER_ADDRESS_FILE,
    ConfigError,
    WorkerService,
    api_server,
    bound_port,
    check_api_exposure,
    data_dir_lock,
    keep_running,
    load_report_routing,
    load_rule_book,
    resolve_bootstrap,
    run_connector,
    run_flood_simulator,
    wait_for_stop,
)

log = logging.getLogger("sitroom")


def _serve_metrics(settings: Settings) -> None:
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.api_host)
        log.info(
            "metrics served",
            extra={"url": f"http://{settings.api_host}:{settings.metrics_port}/metrics"},
        )


async def cmd_up(settings: Settings) -> int:
    """Everything on one machine: broker (unless external), ClickHouse, worker, API, simulator."""
    data_dir = settings.data_dir
    with data_dir_lock(data_dir):
        broker: EmbeddedBroker | None = None
        address_file = data_dir / BROKER_ADDRESS_FILE
        if settings.embedded_broker:
            broker = EmbeddedBroker(log_path=data_dir / "broker.log")
            bootstrap = await asyncio.to_thread(broker.start)
            address_file.write_text(bootstrap + "\n")
        else:
            bootstrap = str(settings.kafka_bootstrap)
        warehouse = Warehouse(settings.clickhouse_target())
        worker = WorkerService(settings, bootstrap, warehouse)
        commands = KafkaEventPublisher(bootstrap)
        server = api_server(settings, warehouse, bootstrap, commands)
        tasks: list[asyncio.Task[object]] = []
        try:
            await create_topics(bootstrap, settings.topic_replication)
            await worker.start()
            tasks.append(asyncio.create_task(server.serve(), name="api"))
            while not server.started:
                if tasks[0].done():
                    await tasks[0]
                    raise ConfigError(
                        f"API could not start on {settings.api_host}:{settings.api_port}"
                    )
                await asyncio.sleep(0.05)
            sources = embedded_sources(settings)
            for source in sources:
                tasks.append(
                    asyncio.create_task(
                        run_connector(source, bootstrap, settings.source_heartbeat_s),
                        name=source.name,
                    )
                )
            tasks.append(
                asyncio.create_task(
                    keep_running(
                        "flood-simulator", lambda: run_flood_simulator(settings, bootstrap)
                    ),
                    name="flood-simulator",
                )
            )
            buses = sum(len(s.buses) for s in sources if isinstance(s, BrtSimulator))
            base = f"http://{settings.api_host}:{bound_port(server)}"
            print(
                f"\nsitroom is up\n"
                f"  API          {base}/v1/transit/overspeed   {base}/v1/alarms?state=active\n"
                f"  API docs     {base}/docs\n"
                f"  metrics      {base}/metrics\n"
                f"  Kafka        {bootstrap}{' (embedded tansu)' if broker else ''}\n"
                f"  ClickHouse   {redact(settings.clickhouse_target())}\n"
                f"  traffic      {base}/v1/traffic/segments   cctv {base}/v1/cctv/incidents\n"
                f"  waste        {base}/v1/waste/trucks\n"
                f"  prices       {base}/v1/prices/city\n"
                f"  reports      {base}/v1/reports?open=true   {base}/v1/reports/counts?by=department\n"
                f"  flood        {base}/v1/flood/status   {base}/v1/flood/cap (CAP 1.2)\n"
                f"  procurement  {base}/v1/procurement/tenders   {base}/v1/procurement/flags\n"
                f"  situation    {base}/v1/situation (every domain, alarms, source freshness)\n"
                f"  simulators   {buses} Trans Semarang buses; flood gauges over MQTT"
                f" {settings.mqtt_url}\n"
                "Ctrl-C stops everything.\n",
                flush=True,
            )
            return await wait_for_stop(list(tasks), worker)
        finally:
            server.should_exit = True
            for task in tasks:
                if task.get_name() != "api":
                    task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 10)
            await worker.stop()
            await commands.close()
            warehouse.close()
            if broker is not None:
                address_file.unlink(missing_ok=True)
                await broker.astop()
            log.info("sitroom stopped")


async def cmd_worker(settings: Settings) -> int:
    bootstrap = resolve_bootstrap(settings)
    _serve_metrics(settings)
    warehouse = Warehouse(settings.clickhouse_target())
    worker = WorkerService(settings, bootstrap, warehouse)
    try:
        await worker.start()
        return await wait_for_stop([], worker)
    finally:
        await worker.stop()
        warehouse.close()


async def cmd_api(settings: Settings) -> int:
    bootstrap = resolve_bootstrap(settings)
    warehouse = Warehouse(settings.clickhouse_target())
    commands = KafkaEventPublisher(bootstrap)
    server = api_server(settings, warehouse, bootstrap, commands)
    task = asyncio.create_task(server.serve(), name="api")
    try:
        return await wait_for_stop([task])
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await commands.close()
        warehouse.close()


async def cmd_connect(settings: Settings, args: argparse.Namespace) -> int:
    bootstrap = resolve_bootstrap(settings)
    _serve_metrics(settings)
    source: Source
    if args.connector == "flood-simulator":
        task = asyncio.create_task(
            run_flood_simulator(
                settings,
                bootstrap,
                start=args.start,
                duration_s=args.duration,
                realtime=not args.fast,
            ),
            name="flood-simulator",
        )
        return await wait_for_stop([task], exit_when_done=True)
    if args.connector in flood_cmd.CONNECTORS:
        source = flood_cmd.source(settings, args)
    elif args.connector in procurement_cmd.CONNECTORS:
        source = procurement_cmd.source(settings, args)
    elif args.connector in reports_cmd.CONNECTORS:
        source = reports_cmd.source(settings, args)
    elif args.connector == "mqtt-bridge":
        source = MqttBridge(
            settings.mqtt_url,
            flood_route(settings.mqtt_prefix),
            client_id=settings.mqtt_client_id,
        )
    elif args.connector == "cctv-simulator":
        source = CctvSimulator(
            load_cameras(),
            seed=settings.sim_seed,
            duration_s=args.duration,
            realtime=not args.fast,
            start=args.start,
        )
    elif args.connector == "waste-simulator":
        source = WasteSimulator(
            load_sites(),
            seed=settings.sim_seed,
            duration_s=args.duration,
            realtime=not args.fast,
            start=args.start,
        )
    elif args.connector == "price-simulator":
        source = PriceSimulator(
            load_markets(),
            load_commodities(),
            seed=settings.sim_seed,
            duration_s=args.duration,
            realtime=not args.fast,
            start=args.start,
        )
    elif args.connector == "price-replay":
        price_files = [Path(f) for f in args.file]
        if args.market not in load_markets().by_id():
            raise ConfigError(
                f"unknown market {args.market!r}; markets are in schemas/markets.toml"
            )
        if missing_files := [str(f) for f in price_files if not f.is_file()]:
            raise ConfigError(f"no such file: {', '.join(missing_files)}")
        source = PriceReplay(
            price_files, args.market, load_commodities(), source=args.source,
            zone=ZoneInfo(settings.timezone),
        )  # fmt: skip
    elif args.connector == "traffic-simulator":
        source = TrafficSimulator(
            load_segments(),
            seed=settings.sim_seed,
            duration_s=args.duration,
            realtime=not args.fast,
            start=args.start,
        )
    elif args.connector == "simulator":
        source = BrtSimulator(
            seed=args.seed if args.seed is not None else settings.sim_seed,
            buses_per_corridor=settings.sim_buses_per_corridor,
            interval_s=settings.sim_interval_s,
            duration_s=args.duration,
            realtime=not args.fast,
            start=args.start,
        )
    else:
        files = [Path(f) for f in args.file or []]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ConfigError(f"no such file: {', '.join(missing)}")
        source = GtfsRtSource(
            files=files, url=args.url, interval_s=args.interval, max_polls=args.polls
        )
    task = asyncio.create_task(
        run_connector(source, bootstrap, settings.source_heartbeat_s), name=source.name
    )
    code = await wait_for_stop([task], exit_when_done=True)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return code


async def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    try:
        bootstrap: str | None = resolve_bootstrap(settings)
    except ConfigError:
        bootstrap = None  # no broker known here: the report says lag is unknown
    return await status_cmd.run(settings, args, bootstrap)


async def cmd_topics(settings: Settings) -> int:
    created = await create_topics(resolve_bootstrap(settings), settings.topic_replication)
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0


def _simulation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, default=None, help="simulated seconds (default: forever)"
    )
    parser.add_argument("--fast", action="store_true", help="do not wait for the wall clock")
    parser.add_argument("--start", type=float, default=None, help="simulated start, unix seconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sitroom", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run everything on this machine (embedded broker and ClickHouse)")
    sub.add_parser("worker", help="run the stream worker")
    sub.add_parser("api", help="run the HTTP API")
    connect = sub.add_parser("connect", help="run a connector")
    csub = connect.add_subparsers(dest="connector", required=True)
    sim = csub.add_parser("simulator", help="Trans Semarang BRT simulator")
    sim.add_argument("--seed", type=int, default=None)
    _simulation_args(sim)
    flood = csub.add_parser(
        "flood-simulator", help="flood gauges over MQTT, citizens' reports to Kafka"
    )
    _simulation_args(flood)
    cams = csub.add_parser("cctv-simulator", help="camera analytics events")
    _simulation_args(cams)
    _simulation_args(csub.add_parser("waste-simulator", help="garbage trucks of DLH"))
    traffic = csub.add_parser("traffic-simulator", help="traffic detectors on Semarang's roads")
    _simulation_args(traffic)
    _simulation_args(
        csub.add_parser("price-simulator", help="staple-food prices at Semarang's markets")
    )
    price_replay = csub.add_parser(
        "price-replay",
        help="Bapanas/PIHPS price tables: .xlsx, CSV or JSON; long or PIHPS' wide layout",
    )
    price_replay.add_argument(
        "--file", nargs="+", required=True, help="tables to replay, in order (.gz too)"
    )
    price_replay.add_argument(
        "--market", required=True, help="market id the table is for, e.g. kota-bandung"
    )
    price_replay.add_argument(
        "--source", default="bapanas", help="source name stored with each price"
    )
    flood_cmd.add_parsers(csub)
    procurement_cmd.add_parsers(csub, _simulation_args)
    reports_cmd.add_parsers(csub, _simulation_args)
    csub.add_parser("mqtt-bridge", help="bridge MQTT semarang/flood/<station>/<kind> to Kafka")
    gtfs = csub.add_parser("gtfs-rt", help="GTFS-realtime VehiclePositions (files or a URL)")
    gtfs.add_argument("--file", nargs="+", help="FeedMessage files to replay, in order")
    gtfs.add_argument("--url", help="feed URL to poll")
    gtfs.add_argument("--interval", type=float, default=15.0, help="seconds between polls")
    gtfs.add_argument("--polls", type=int, default=None, help="stop after this many polls")
    topics = sub.add_parser("topics", help="Kafka topics")
    topics.add_argument("action", choices=["create"])
    tokens_cmd.add_parser(sub)
    status_cmd.add_parser(sub)
    schemas = sub.add_parser("schemas", help="event schemas")
    schemas.add_argument("action", choices=["export"])
    schemas.add_argument("--out", type=Path, default=Path("schemas/json"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "connect" and args.connector == "gtfs-rt" and not (args.file or args.url):
        print("sitroom connect gtfs-rt: give --file PATH [PATH ...] or --url URL", file=sys.stderr)
        return 2
    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors():
            field = "SITROOM_" + "_".join(str(p) for p in err["loc"]).upper()
            print(f"invalid setting {field}: {err['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "token":
        return tokens_cmd.run(args)
    if args.command == "schemas":
        for path in export_json_schemas(args.out):
            print(path)
        return 0
    runners = {
        "up": lambda: cmd_up(settings),
        "worker": lambda: cmd_worker(settings),
        "api": lambda: cmd_api(settings),
        "connect": lambda: cmd_connect(settings, args),
        "topics": lambda: cmd_topics(settings),
        "status": lambda: cmd_status(settings, args),
    }
    try:
        if args.command in ("up", "worker"):
            # Checked before a broker or the warehouse starts: one line, exit code 2.
            load_rule_book(settings)
            load_report_routing(settings)
        if args.command in ("up", "api"):
            check_api_exposure(settings, warn=False)
        return asyncio.run(runners[args.command]())
    except ConfigError as exc:
        print(f"sitroom: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
