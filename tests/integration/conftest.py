"""Integration fixtures: a real tansu broker per test, one chdb engine per test process.

chdb allows one data directory per process, so the engine is session-wide and each test
starts from truncated tables.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel

from api.app import create_api
from api.commands import KafkaEventPublisher
from connectors.base import Source
from connectors.brt_simulator import BrtSimulator
from connectors.publisher import KafkaPublisher
from schemas.catalog import VEHICLE_POSITIONS, TopicSpec
from schemas.clickhouse_ddl import DDL
from schemas.settings import Settings
from schemas.transit import VehiclePosition
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.kafka_admin import broker_reachable, create_topics
from sitroom.runtime import WorkerService

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    wh = Warehouse(f"chdb://{tmp_path_factory.mktemp('chdb')}")
    yield wh
    wh.close()


async def truncate_all(warehouse: Warehouse) -> None:
    for statement in DDL:
        if "CREATE TABLE" in statement:
            table = statement.split("EXISTS", 1)[1].split("(", 1)[0].strip()
            await warehouse._run("command", f"TRUNCATE TABLE {table}")


@pytest.fixture
async def clean_warehouse(warehouse: Warehouse) -> Warehouse:
    await warehouse.ensure_schema()
    await truncate_all(warehouse)
    return warehouse


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(log_path=tmp_path / "broker.log")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_id=f"it-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        stream_tick_s=1.0,
        sink_max_delay_s=0.3,
    )


class ListSource(Source):
    """Publishes prepared batches, e.g. one half of a deterministic simulator run."""

    name = "test-list"
    topic = VEHICLE_POSITIONS

    def __init__(self, batches: Sequence[Sequence[BaseModel]]) -> None:
        self._batches = batches

    def key(self, event: BaseModel) -> str:
        return str(event.vehicle_id)

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        for batch in self._batches:
            yield batch


@asynccontextmanager
async def running_worker(
    settings: Settings, bootstrap: str, warehouse: Warehouse
) -> AsyncIterator[WorkerService]:
    await create_topics(bootstrap)
    worker = WorkerService(settings, bootstrap, warehouse)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


@asynccontextmanager
async def api_client(
    settings: Settings, warehouse: Warehouse, bootstrap: str
) -> AsyncIterator[httpx.AsyncClient]:
    async def probe() -> bool:
        return await broker_reachable(bootstrap)

    commands = KafkaEventPublisher(bootstrap)
    app = create_api(settings, warehouse, probe, commands)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield c
    await commands.close()


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout_s: float = 60.0, what: str = "condition"
) -> Any:
    """Poll until ``check`` returns a truthy value; fail with the last value seen."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last value {last!r}")


# --- Worker subprocesses (crash tests) ------------------------------------------------------

_WORKER_MAIN = "from sitroom.cli import main; raise SystemExit(main(['worker']))"
_DUMP_MAIN = """
import asyncio, sys
import orjson
from schemas.warehouse import Warehouse

async def dump() -> None:
    wh = Warehouse(sys.argv[1])
    out = {}
    for name, sql in orjson.loads(sys.argv[2]).items():
        out[name] = [list(r.values()) for r in await wh.query(sql)]
    wh.close()
    sys.stdout.buffer.write(orjson.dumps(out))

asyncio.run(dump())
"""
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env(bootstrap: str, data_dir: Path, app_id: str, **settings: object) -> dict[str, str]:
    """The environment of a `sitroom worker`: nothing inherited from the caller's SITROOM_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITROOM_")}
    env.update(
        SITROOM_KAFKA_BOOTSTRAP=bootstrap,
        SITROOM_DATA_DIR=str(data_dir),
        SITROOM_CLICKHOUSE_DSN=f"chdb://{data_dir / 'clickhouse'}",
        SITROOM_APP_ID=app_id,
        SITROOM_LOG_FORMAT="text",
    )
    env.update({f"SITROOM_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@dataclass
class WorkerProcess:
    """A real `sitroom worker` process; its chdb directory is readable only once it stopped."""

    name: str
    env: dict[str, str]
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def dsn(self) -> str:
        return self.env["SITROOM_CLICKHOUSE_DSN"]

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {**self.env, "SITROOM_METRICS_PORT": str(self.metrics_port)}
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_MAIN],
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, no flush."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout_s: float = 40.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            raise

    async def metrics(self) -> dict[str, float]:
        """This incarnation's Prometheus samples (``name{labels}`` → value); {} if unreachable."""
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                text = (await client.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text
        except httpx.HTTPError:
            return {}
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def dump_tables(dsn: str, queries: dict[str, str]) -> dict[str, list[list[Any]]]:
    """Run queries against a stopped worker's chdb directory in a process of their own
    (chdb opens one data directory per process)."""
    done = subprocess.run(
        [sys.executable, "-c", _DUMP_MAIN, dsn, json.dumps(queries)],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"reading {dsn} failed: {done.stderr.decode()[-2000:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def committed_offsets(bootstrap: str, group: str, spec: TopicSpec) -> list[int]:
    """The group's committed offsets of every partition of ``spec`` (-1: none yet)."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        out = []
        for p in range(spec.partitions):
            c = await probe.committed(TopicPartition(spec.name, p))
            out.append(-1 if c is None else int(c))
        return out
    finally:
        await probe.stop()


async def end_offsets(bootstrap: str, spec: TopicSpec) -> list[int]:
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await probe.start()
    try:
        tps = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        ends = await probe.end_offsets(tps)
        return [int(ends[tp]) for tp in tps]
    finally:
        await probe.stop()


# --- Transit feeds and table comparison (crash and rebalance tests) -------------------------


def adversarial_feed(
    buses_per_corridor: int,
    start: int,
    duration_s: int,
    shuffle_s: float,
    duplicates: int,
    chunk: int,
    interval_s: float = 2.0,
    seed: int = 11,
) -> tuple[list[list[VehiclePosition]], int, int]:
    """Simulated positions in publish batches, in an adversarial arrival order: vehicles
    interleaved, each vehicle's fixes arriving up to ``shuffle_s`` behind its newest, and
    ``duplicates`` fixes sent twice (with ``interval_s`` well below ``shuffle_s``, a vehicle's
    fixes really do arrive out of order). Also: the (vehicle, ts) rows and the (vehicle, minute)
    windows that the positions inside the service area make."""
    sim = BrtSimulator(
        seed=seed,
        buses_per_corridor=buses_per_corridor,
        interval_s=interval_s,
        start=start,
        duration_s=duration_s,
        realtime=False,
    )
    positions: list[VehiclePosition] = []
    t = float(start)
    while t - start < duration_s:
        positions.extend(sim.tick(t, interval_s))
        t += interval_s
    rng = random.Random(seed)
    # Arrival = event time + a delay below shuffle_s: a fix arrives at most shuffle_s behind
    # its vehicle's newest, and vehicles interleave freely.
    arrivals = [(p.ts + rng.uniform(0, shuffle_s), p) for p in positions]
    arrivals += [(p.ts + rng.uniform(0, shuffle_s), p) for p in rng.sample(positions, duplicates)]
    arrivals.sort(key=lambda a: a[0])
    ordered = [p for _, p in arrivals]
    area = Settings(_env_file=None).service_area  # type: ignore[call-arg]
    assert area is not None
    inside = [p for p in positions if area.contains(p.lon, p.lat)]
    windows = {(p.vehicle_id, int(p.ts // 60)) for p in inside}
    batches = [ordered[i : i + chunk] for i in range(0, len(ordered), chunk)]
    return batches, len(inside), len(windows)


async def publish_positions(
    bootstrap: str, batches: Sequence[Sequence[VehiclePosition]], pause_s: float = 0.0
) -> None:
    publisher = KafkaPublisher(bootstrap, "test-feed")
    await publisher.start()
    try:
        for batch in batches:
            await publisher.publish(VEHICLE_POSITIONS, batch, lambda e: e.vehicle_id)  # type: ignore[attr-defined]
            if pause_s:
                await asyncio.sleep(pause_s)
    finally:
        await publisher.stop()


_ALARM_COLUMNS = (
    "id, version, kind, entity, severity, state, started_at, last_seen, cleared_at, value,"
    " threshold, context, domain, level, reason, acknowledged_by, acknowledged_at, cleared_by"
)
# Every transit table, each row led by its key (the number of key columns in TRANSIT_KEYS);
# ingested_at is left out: it is the wall time of arrival.
TRANSIT_QUERIES = {
    "transit_positions": (
        "SELECT vehicle_id, ts, label, route_id, corridor, trip_id, lat, lon, bearing,"
        " reported_speed_kmh, speed_kmh, occupancy, source, bad_fix, kecamatan"
        " FROM transit_positions FINAL ORDER BY vehicle_id, ts"
    ),
    "transit_vehicle_1m": (
        "SELECT vehicle_id, window_start, corridor, positions, speed_samples, mean_speed_kmh,"
        " max_speed_kmh, seconds_over_limit, limit_kmh, version"
        " FROM transit_vehicle_1m FINAL ORDER BY vehicle_id, window_start"
    ),
    "transit_corridor_1m": (
        "SELECT corridor, window_start, positions, vehicles, mean_speed_kmh, max_speed_kmh,"
        " seconds_over_limit FROM transit_corridor_1m ORDER BY corridor, window_start"
    ),
    "alarms": f"SELECT {_ALARM_COLUMNS} FROM alarms FINAL ORDER BY id",
    "alarm_transitions": (
        f"SELECT {_ALARM_COLUMNS} FROM alarm_transitions FINAL ORDER BY id, version"
    ),
}
TRANSIT_KEYS = {
    "transit_positions": 2,
    "transit_vehicle_1m": 2,
    "transit_corridor_1m": 2,
    "alarms": 1,
    "alarm_transitions": 2,
}
ALARM_STATE = 5  # column of ``state`` in the alarm queries


async def transit_tables(wh: Warehouse) -> dict[str, list[list[Any]]]:
    """TRANSIT_QUERIES in this process, as JSON would carry them (like dump_tables)."""
    out = {}
    for name, sql in TRANSIT_QUERIES.items():
        out[name] = [list(r.values()) for r in await wh.query(sql)]
    return json.loads(orjson.dumps(out))  # type: ignore[no-any-return]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b))  # view sums: addition order
    return bool(a == b)


def table_differences(
    reference: dict[str, list[list[Any]]], other: dict[str, list[list[Any]]], what: str
) -> str:
    """'' if every table is equal; else, per table, how many keys differ and a few of them."""
    report = []
    for table, key in TRANSIT_KEYS.items():
        a = {tuple(r[:key]): r for r in reference[table]}
        b = {tuple(r[:key]): r for r in other[table]}
        lines = [f"only reference {k}: {a[k]}" for k in sorted(a.keys() - b.keys(), key=str)[:3]]
        lines += [f"only {what} {k}: {b[k]}" for k in sorted(b.keys() - a.keys(), key=str)[:3]]
        changed = [
            k for k in sorted(a.keys() & b.keys(), key=str)
            if len(a[k]) != len(b[k]) or not all(map(_same, a[k], b[k]))
        ]  # fmt: skip
        lines += [f"differs {k}:\n  reference {a[k]}\n  {what} {b[k]}" for k in changed[:5]]
        if lines:
            report.append(
                f"{table}: {len(a)} vs {len(b)} rows, {len(a.keys() ^ b.keys())} keys on one"
                f" side only, {len(changed)} differ\n" + "\n".join(lines)
            )
    return "\n".join(report)


def write_tokens(path: Path, tokens: dict[str, tuple[str, list[str], str | None]]) -> Path:
    """An API tokens file as `sitroom token add` writes it, for secrets the test chose:
    secret → (name, roles, department or None)."""
    text = ""
    for secret, (name, roles, department) in tokens.items():
        digest = hashlib.sha256(secret.encode()).hexdigest()
        text += f'[[token]]\nname = "{name}"\nsha256 = "{digest}"\nroles = {json.dumps(roles)}\n'
        if department:
            text += f"department = {json.dumps(department)}\n"
    path.write_text(text)
    return path
