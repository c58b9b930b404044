"""`sitroom connect` subcommands of e-procurement: SPSE and OCDS replays, the LPSE simulator."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import Source
from connectors.ocds_replay import OcdsReplaySource
from connectors.procurement_simulator import ProcurementSimulator
from connectors.spse_replay import ListingKind, SpseReplaySource
from connectors.textfile import check_encoding
from schemas.settings import Settings
from sitroom.runtime import ConfigError

CONNECTORS = ("spse-replay", "ocds-replay", "procurement-simulator")


def _as_of(text: str) -> datetime:
    """An ISO 8601 time; one without an offset is given the room's zone in :func:`source`."""
    return datetime.fromisoformat(text)


def _encoding(text: str) -> str:
    try:
        check_encoding(text)
    except LookupError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def add_parsers(csub: Any, simulation_args: Any) -> None:
    spse = csub.add_parser("spse-replay", help="SPSE (LPSE) DataTables listing files")
    spse.add_argument("--file", nargs="+", required=True, help="listing JSON files")
    spse.add_argument("--kind", choices=[k.value for k in ListingKind], default=None,
                      help="column layout: lelang is the tender listing (/dt/lelang); "
                           "default: from the file name or the rows")  # fmt: skip
    spse.add_argument("--as-of", type=_as_of, default=None,
                      help="when the listing was taken, ISO 8601; without an offset in "
                           "SITROOM_TIMEZONE (default: now)")  # fmt: skip
    spse.add_argument("--encoding", type=_encoding, default=None,
                      help="the files' text encoding (default: detected)")  # fmt: skip
    ocds = csub.add_parser(
        "ocds-replay",
        help="Open Contracting (OCDS) release or record packages, releases, JSON lines",
    )
    ocds.add_argument("--file", nargs="+", required=True,
                      help="OCDS JSON files (.json, .jsonl, optionally .gz)")  # fmt: skip
    ocds.add_argument("--encoding", type=_encoding, default=None,
                      help="the files' text encoding, e.g. iso-8859-1 (default: detected)")  # fmt: skip
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
    zone = ZoneInfo(settings.timezone)
    if args.connector == "spse-replay":
        kind = ListingKind(args.kind) if args.kind else None
        as_of = args.as_of
        if as_of is not None and as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=zone)
        return SpseReplaySource(files, kind=kind, as_of=as_of, encoding=args.encoding)
    return OcdsReplaySource(files, encoding=args.encoding, tz=zone)
