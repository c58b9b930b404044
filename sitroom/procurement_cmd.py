"""`sitroom connect` subcommands of e-procurement: SPSE and OCDS replays, the LPSE simulator."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.base import Source
from connectors.ocds_replay import OcdsReplaySource
from connectors.procurement_simulator import ProcurementSimulator
from connectors.spse_replay import ListingKind, SpseReplaySource
from schemas.settings import Settings
from sitroom.runtime import ConfigError

CONNECTORS = ("spse-replay", "ocds-replay", "procurement-simulator")


def _as_of(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_parsers(csub: Any, simulation_args: Any) -> None:
    spse = csub.add_parser("spse-replay", help="SPSE (LPSE) DataTables listing files")
    spse.add_argument("--file", nargs="+", required=True, help="listing JSON files")
    spse.add_argument("--kind", choices=[k.value for k in ListingKind], default=None,
                      help="column layout (default: from the file name or the rows)")  # fmt: skip
    spse.add_argument("--as-of", type=_as_of, default=None,
                      help="when the listing was taken, ISO 8601 (default: now)")  # fmt: skip
    ocds = csub.add_parser("ocds-replay", help="Open Contracting (OCDS) release packages")
    ocds.add_argument("--file", nargs="+", required=True, help="release package JSON files")
    simulation_args(csub.add_parser("procurement-simulator", help="LPSE Kota Semarang tenders"))


def source(settings: Settings, args: argparse.Namespace) -> Source:
    """The connector named by ``args.connector`` (one of :data:`CONNECTORS`)."""
    if args.connector == "procurement-simulator":
        return ProcurementSimulator(seed=settings.sim_seed, start=args.start,
                                    duration_s=args.duration, realtime=not args.fast)  # fmt: skip
    files = [Path(f) for f in args.file]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"no such file: {', '.join(missing)}")
    if args.connector == "spse-replay":
        kind = ListingKind(args.kind) if args.kind else None
        return SpseReplaySource(files, kind=kind, as_of=args.as_of)
    return OcdsReplaySource(files)
