"""The transit core alone, in process: no broker, no ClickHouse. Feeds the benchmark's load
(the same BRT simulator positions, 6 partitions) to one ``TransitPartition`` per partition
in runs as the batch consumer hands them over, encodes the rows as the sink would, and
prints microseconds per position for each stage. For quick comparisons of hot-path changes
against each other on a quiet machine; ``make bench`` remains the measure.

    python bench/core_transit.py [--events 200000] [--input per-message|batched] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PARTITIONS, Load
from connectors.publisher import encode_batch, partition_for
from schemas.insert_encoding import json_rows
from schemas.settings import Settings
from sitroom.runtime import tune_gc
from streams.pipeline_types import Emitted, Message
from streams.transit_logic import TransitRules
from streams.transit_stream import TOPIC, TransitPartition


def messages(load: Load, per_message: bool) -> list[list[Message]]:
    """Per partition, its messages in order."""
    out: list[list[Message]] = [[] for _ in range(PARTITIONS)]
    for tick in load.ticks():
        groups: dict[int, list[object]] = {}
        for p in tick:
            groups.setdefault(partition_for(p.vehicle_id, PARTITIONS), []).append(p)  # type: ignore[attr-defined]
        for part, group in groups.items():
            values = (
                [p.model_dump_json(exclude_none=True).encode() for p in group]  # type: ignore[attr-defined]
                if per_message
                else [encode_batch(group)]  # type: ignore[arg-type]
            )
            for v in values:
                out[part].append(Message(TOPIC, part, len(out[part]), None, v))
    return out


def run(parts: list[list[Message]], run_size: int) -> tuple[float, float, int]:
    """Seconds in handle_many and in encoding, and positions seen."""
    settings = Settings()
    rules = TransitRules.from_settings(settings)
    procs = [TransitPartition(settings, rules, p, None) for p in range(PARTITIONS)]
    handle = encode = 0.0
    seen = 0
    offsets = [0] * PARTITIONS
    while any(offsets[p] < len(parts[p]) for p in range(PARTITIONS)):
        for p in range(PARTITIONS):
            run_ = parts[p][offsets[p] : offsets[p] + run_size]
            offsets[p] += len(run_)
            if not run_:
                continue
            out = Emitted()
            now = datetime.fromtimestamp(time.time(), UTC)
            t0 = time.perf_counter()
            results = procs[p].handle_many(run_, now, out)
            t1 = time.perf_counter()
            for _table, (_cols, rows) in out.tables.items():
                json_rows(rows)
            t2 = time.perf_counter()
            handle += t1 - t0
            encode += t2 - t1
            seen += sum(n for _, n, _ in results)
    return handle, encode, seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--input", choices=["per-message", "batched"], default="per-message")
    ap.add_argument("--run", type=int, default=3_000, help="messages per partition run")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    load = Load(events=args.events, buses=500, start=float(int(time.time()) - 3600))
    parts = messages(load, args.input == "per-message")
    tune_gc()  # as the worker does
    best = None
    for i in range(args.repeat):
        handle, encode, seen = run(parts, args.run)
        us = (1e6 * handle / seen, 1e6 * encode / seen)
        print(f"run {i + 1}: handle {us[0]:.2f} µs/position, encode {us[1]:.2f} µs/position "
              f"({seen:,} positions)", flush=True)  # fmt: skip
        best = us if best is None or sum(us) < sum(best) else best
    assert best is not None
    print(f"best: handle {best[0]:.2f} + encode {best[1]:.2f} = {sum(best):.2f} µs/position")


if __name__ == "__main__":
    main()
