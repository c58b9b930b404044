"""`sitroom connect` subcommands of citizen reports: the import from other apps, the simulator."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from connectors.base import Source
from connectors.report_import import ReportImport
from connectors.report_simulator import ReportSimulator
from schemas.reports import load_routing
from schemas.settings import Settings
from sitroom.runtime import ConfigError

CONNECTORS = ("report-import", "report-simulator")


def add_parsers(csub: Any, simulation_args: Any) -> None:
    imp = csub.add_parser(
        "report-import", help="citizen reports exported by other apps (JSON lines)"
    )
    imp.add_argument("--file", nargs="+", required=True, help="JSON-lines export files, in order")
    simulation_args(
        csub.add_parser("report-simulator", help="citizen reports and the OPD handling them")
    )


def simulator(settings: Settings, **kwargs: Any) -> ReportSimulator:
    return ReportSimulator(load_routing(settings.report_routing), seed=settings.sim_seed, **kwargs)


def source(settings: Settings, args: argparse.Namespace) -> Source:
    """The connector named by ``args.connector`` (one of :data:`CONNECTORS`)."""
    if args.connector == "report-simulator":
        return simulator(
            settings, start=args.start, duration_s=args.duration, realtime=not args.fast
        )
    files = [Path(f) for f in args.file]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"no such file: {', '.join(missing)}")
    return ReportImport(files)
