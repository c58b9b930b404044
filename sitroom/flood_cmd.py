"""`sitroom connect` subcommands of flood history: PetaBencana report archives and gauge tables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import Source
from connectors.flood_report_import import FloodReportImport
from connectors.gauge_replay import UNIT_NAMES, GaugeReplay, MapError, load_map
from schemas.flood import load_stations
from schemas.settings import Settings
from sitroom.runtime import ConfigError

CONNECTORS = ("flood-report-import", "gauge-replay")


def add_parsers(csub: Any) -> None:
    reports = csub.add_parser(
        "flood-report-import",
        help="PetaBencana.id / CogniCity flood report archives (GeoJSON, the API's JSON)",
    )
    reports.add_argument("--file", nargs="+", required=True, help="archive files, in order")
    gauges = csub.add_parser(
        "gauge-replay", help="backfill gauge readings from tables (CSV, XLSX, USGS JSON)"
    )
    gauges.add_argument("--file", nargs="+", required=True, help="tables to replay, in order")
    gauges.add_argument(
        "--map", required=True,
        help="gate → station map: a TOML file ([gates] \"Katulampa\" = \"BKB-SIMONGAN\")"
        " or inline NAME=STATION[:UNIT],...",
    )  # fmt: skip
    gauges.add_argument("--unit", choices=sorted(set(UNIT_NAMES.values())), default="cm",
                        help="unit of the readings unless the map or a column says (default cm)")  # fmt: skip
    gauges.add_argument("--source", default="gauge-replay", help="source name stored with each reading")  # fmt: skip


def _files(args: argparse.Namespace) -> list[Path]:
    files = [Path(f) for f in args.file]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"no such file: {', '.join(missing)}")
    return files


def source(settings: Settings, args: argparse.Namespace) -> Source:
    """The connector named by ``args.connector`` (one of :data:`CONNECTORS`)."""
    zone = ZoneInfo(settings.timezone)
    if args.connector == "flood-report-import":
        return FloodReportImport(_files(args), zone)
    files = _files(args)
    try:
        gates = load_map(args.map, load_stations(), args.unit)
    except MapError as exc:
        raise ConfigError(str(exc)) from None
    return GaugeReplay(files, gates, zone, source=args.source[:64])
