"""What every consumer in the side-by-side benchmark shares: the load, the answer it must
give, and the result it reports.

Each consumer runs in its own process (chdb allows one data directory per process, and a
process of its own gives an honest peak RSS), reads the same preloaded topic, derives speed
per vehicle, builds 1-minute vehicle windows, writes positions and windows to its own
ClickHouse (chdb) directory, then checks its windows against the generator and prints one
JSON :class:`Result` line on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WINDOW_S = 60
PARTITIONS = 6

# Tables of the peer consumers (the sitroom worker writes its own schema). Replacing
# engines keyed by identity: every consumer may replay after a restart.
PEER_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_positions (vehicle_id String, ts DateTime64(3, 'UTC'), "
    "lat Float64, lon Float64, speed_kmh Nullable(Float64)) "
    "ENGINE = ReplacingMergeTree ORDER BY (vehicle_id, ts)",
    "CREATE TABLE IF NOT EXISTS bench_windows (vehicle_id String, window_start DateTime('UTC'), "
    "positions UInt32, max_speed_kmh Nullable(Float64)) "
    "ENGINE = ReplacingMergeTree ORDER BY (vehicle_id, window_start)",
)
PEER_POSITION_COLUMNS = ("vehicle_id", "ts", "lat", "lon", "speed_kmh")
PEER_WINDOW_COLUMNS = ("vehicle_id", "window_start", "positions", "max_speed_kmh")
PEER_WINDOWS_SQL = (
    "SELECT vehicle_id, toUnixTimestamp(window_start) AS ws, positions FROM bench_windows FINAL"
)


@dataclass(frozen=True)
class Load:
    events: int
    buses: int
    start: float  # event time of the first tick (seconds); fixed by the orchestrator
    seed: int = 1
    interval_s: float = 5.0

    def ticks(self) -> Iterator[list[object]]:
        """The BRT simulator's positions, tick by tick, ``events`` in all."""
        from connectors.brt_simulator import BrtSimulator

        corridors = 7
        sim = BrtSimulator(
            seed=self.seed,
            buses_per_corridor=max(1, self.buses // corridors),
            realtime=False,
            start=self.start,
        )
        sent, t = 0, self.start
        while sent < self.events:
            tick = sim.tick(t, self.interval_s)[: self.events - sent]
            t += self.interval_s
            sent += len(tick)
            yield list(tick)


def window_of(ts: float) -> int:
    return int(ts // WINDOW_S) * WINDOW_S


def expected_windows(load: Load) -> dict[str, int]:
    """``"vehicle|window_start"`` → positions, for every window that a correct consumer
    must have closed: each vehicle's newest window may still be open, so it is left out."""
    counts: dict[tuple[str, int], int] = {}
    newest: dict[str, int] = {}
    for tick in load.ticks():
        for p in tick:
            vid, ts = p.vehicle_id, p.timestamp.timestamp()  # type: ignore[attr-defined]
            w = window_of(ts)
            counts[(vid, w)] = counts.get((vid, w), 0) + 1
            newest[vid] = max(newest.get(vid, w), w)
    return {f"{v}|{w}": n for (v, w), n in counts.items() if w < newest[v]}


def check_windows(found: dict[str, int], expected: dict[str, int]) -> int:
    """How many expected windows are missing or hold a different count."""
    return sum(1 for key, n in expected.items() if found.get(key) != n)


def found_from_rows(rows: list[tuple[object, object, object]]) -> dict[str, int]:
    return {f"{v}|{int(w)}": int(n) for v, w, n in rows}  # type: ignore[call-overload]


def peak_rss_mb() -> float:
    """VmHWM: the process's peak resident set."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Result:
    consumer: str
    input: str  # "per-message" or "batched"
    events: int
    seconds: float  # first message consumed → last row stored
    windows_expected: int
    windows_wrong: int
    peak_rss_mb: float
    note: str = ""
    started_at: float = 0.0  # wall clock (epoch s), to span several processes
    ended_at: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def emit(self) -> None:
        print("RESULT " + json.dumps(asdict(self)), flush=True)

    @classmethod
    def parse(cls, stdout: str) -> Result:
        for line in stdout.splitlines():
            if line.startswith("RESULT "):
                return cls(**json.loads(line[len("RESULT ") :]))
        raise ValueError("consumer printed no RESULT line")


class Stopwatch:
    """Starts at the first consumed message, so group joins and imports are not counted."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None

    def consumed(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def stored(self) -> None:
        self.last = time.perf_counter()

    @property
    def seconds(self) -> float:
        if self.first is None or self.last is None:
            return float("nan")
        return self.last - self.first


def consumer_args(description: str) -> dict[str, object]:
    """The command line every consumer takes."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--input", choices=["per-message", "batched"], required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--expected", type=Path, required=True, help="JSON of expected windows")
    parser.add_argument("--chdb", type=Path, required=True, help="this consumer's data directory")
    parser.add_argument("--group", default="")
    return vars(parser.parse_args())


def load_expected(path: Path) -> dict[str, int]:
    return dict(json.loads(path.read_text()))


def emit_peer_result(client: Any, consumer: str, input_: str, events: int, seconds: float,
                     expected_path: Path, note: str = "") -> None:  # fmt: skip
    """A peer's closing line: its windows (``bench_windows``) checked against the generator."""
    expected = load_expected(expected_path)
    found = found_from_rows(client.query(PEER_WINDOWS_SQL).result_rows)
    Result(
        consumer=consumer,
        input=input_,
        events=events,
        seconds=seconds,
        windows_expected=len(expected),
        windows_wrong=check_windows(found, expected),
        peak_rss_mb=peak_rss_mb(),
        note=note,
    ).emit()
