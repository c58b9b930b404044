"""sitroom's worker side by side with its peers, on the same preloaded topic, in one run.

    python bench/side_by_side.py [--events 200000] [--buses 500] [--skip quix,faust] [--repeat 3]

For each input (one event per Kafka message, then the connectors' JSON-array batches) a
fresh embedded tansu broker is preloaded with the same BRT simulator positions, and each
consumer runs in its own process with its own chdb directory (bench/peers/): a plain
aiokafka ``getmany`` loop, the sitroom worker, Quix Streams 3.x and faust's textbook
windowed table. Every consumer derives speed per vehicle, builds 1-minute vehicle windows,
writes positions and windows to ClickHouse and checks its windows against the generator.
The plain loop and the worker, whose ratio is the target, run ``--repeat`` times each,
alternating; the table shows each one's median run (a 2-core machine shared with others
moves single runs by ±30%).

Then, for the sitroom worker only: latency (produced → row queryable, p50/p99) under a
live load at half the rate it sustained; peak RSS (VmHWM) with 10,000 vehicles against
the same worker idle; two workers of one group, each with its own chdb, on one topic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer

from bench.common import Load, Result, expected_windows
from connectors.publisher import encode_batch, partition_for
from schemas.catalog import VEHICLE_POSITIONS
from schemas.transit import VehiclePosition
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.kafka_admin import create_topics

TOPIC = VEHICLE_POSITIONS.name
PARTITIONS = VEHICLE_POSITIONS.partitions
PEERS = ROOT / "bench" / "peers"
CONSUMERS = {  # name → script; the order they run in
    "plain": "plain_loop.py",
    "sitroom": "sitroom_worker.py",
    "quix": "quix_consumer.py",
    "faust": "faust_textbook.py",
}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def progress(label: str, done: int, total: int) -> None:
    print(f"\r  {label}: {done:,}/{total:,} ({100 * done / max(total, 1):.0f}%)", end="",
          file=sys.stderr, flush=True)  # fmt: skip


async def produce(bootstrap: str, ticks: Iterable[list[VehiclePosition]], per_message: bool,
                  total: int) -> int:  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, max_request_size=8 << 20
    )
    await producer.start()
    sent = messages = 0
    try:
        for tick in ticks:
            groups: dict[int, list[VehiclePosition]] = {}
            for p in tick:
                groups.setdefault(partition_for(p.vehicle_id, PARTITIONS), []).append(p)
            for part, group in groups.items():
                if per_message:
                    for p in group:
                        await producer.send(TOPIC, p.model_dump_json(exclude_none=True).encode(),
                                            key=p.vehicle_id.encode(), partition=part)  # fmt: skip
                    messages += len(group)
                else:
                    await producer.send(TOPIC, encode_batch(group), partition=part)
                    messages += 1
            sent += len(tick)
            if sent % 20_000 < len(tick):
                progress("preload", sent, total)
        await producer.flush()
    finally:
        await producer.stop()
        print(file=sys.stderr)
    return messages


@dataclass
class Proc:
    name: str
    proc: asyncio.subprocess.Process
    lines: list[str]

    async def wait_line(self, prefix: str, timeout_s: float) -> str:
        async def read() -> str:
            assert self.proc.stdout is not None
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise RuntimeError(f"{self.name} exited before printing {prefix}")
                line = raw.decode().strip()
                self.lines.append(line)
                if line.startswith(prefix):
                    return line

        return await asyncio.wait_for(read(), timeout_s)

    async def finish(self, timeout_s: float) -> str:
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), timeout_s)
        except TimeoutError:
            self.proc.kill()
            out, _ = await self.proc.communicate()
        return "\n".join(self.lines) + "\n" + out.decode()


async def spawn(name: str, script: str, *args: str) -> Proc:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(PEERS / script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return Proc(name, proc, [])


async def run_consumer(name: str, bootstrap: str, input_: str, events: int, expected: Path,
                       tmp: Path) -> Result | None:  # fmt: skip
    say(f"  running {name} ({input_}) …")
    data = tmp / f"{name}-{input_}"
    data.mkdir(parents=True)
    p = await spawn(name, CONSUMERS[name], "--bootstrap", bootstrap, "--topic", TOPIC,
                    "--input", input_, "--events", str(events), "--expected", str(expected),
                    "--chdb", str(data), "--group", f"bench-{name}-{uuid.uuid4().hex[:6]}")  # fmt: skip
    out = await p.finish(1200)
    try:
        r = Result.parse(out)
    except ValueError:
        say(f"  {name} ({input_}) gave no result:\n{out[-2000:]}")
        return None
    say(f"  {r.consumer} ({input_}): {r.rate:,.0f} events/s, {r.windows_wrong} windows wrong")
    return r


REPEATED = ("plain", "sitroom")  # run several times, alternating: their ratio is the target


def median_run(runs: list[Result]) -> Result:
    """The run of median rate stands for the consumer, with the worst window check of all."""
    ranked = sorted(runs, key=lambda r: r.rate)
    mid = ranked[(len(ranked) - 1) // 2]
    wrong = max(runs, key=lambda r: r.windows_wrong)
    rates = ", ".join(f"{r.rate:,.0f}" for r in runs)
    return replace(mid, windows_wrong=wrong.windows_wrong, windows_expected=wrong.windows_expected,
                   note=f"runs: {rates}" if len(runs) > 1 else mid.note)  # fmt: skip


async def phase(
    load: Load, per_message: bool, names: list[str], tmp: Path, repeat: int = 1
) -> list[Result]:
    input_ = "per-message" if per_message else "batched"
    if not names:
        return []
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    try:
        await create_topics(bootstrap)
        messages = await produce(bootstrap, load.ticks(), per_message, load.events)
        say(f"{input_}: {load.events:,} positions of {load.buses} buses in {messages:,} messages")
        expected = tmp / "expected.json"
        if not expected.exists():
            expected.write_text(json.dumps(expected_windows(load)))
        # One run of each, then more of the plain loop and the worker, alternating, so that a
        # slower or faster spell of a shared machine falls on both.
        runs: dict[str, list[Result]] = {}
        for round_ in range(max(1, repeat)):
            for name in names if round_ == 0 else [n for n in names if n in REPEATED]:
                r = await run_consumer(name, bootstrap, input_, load.events, expected,
                                       tmp / f"round-{round_}")  # fmt: skip
                if r is not None:
                    runs.setdefault(name, []).append(r)
        return [median_run(rs) for rs in runs.values()]
    finally:
        broker.stop()


async def latency(rate: float, seconds: float, tmp: Path) -> str:
    """A live load of ``rate`` positions/s, one per message, with a probe every 50 ms."""
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    try:
        await create_topics(bootstrap)
        (tmp / "latency").mkdir()
        probes = int(seconds / 0.05)
        worker = await spawn("sitroom", "sitroom_worker.py", "--bootstrap", bootstrap,
                             "--chdb", str(tmp / "latency"), "--mode", "latency",
                             "--probes", str(probes), "--timeout", str(seconds + 60))  # fmt: skip
        await worker.wait_line("READY", 120)
        await asyncio.get_running_loop().run_in_executor(
            None, live_load, bootstrap, rate, seconds, probes
        )
        line = await worker.wait_line("LATENCY", seconds + 90)
        await worker.finish(60)
        return line
    finally:
        broker.stop()


def live_load(bootstrap: str, rate: float, seconds: float, probes: int) -> None:
    """One fix per message at ``rate``/s, each stamped with the time it is sent, from 2,500
    vehicles, plus a probe every 50 ms. Produced with
    librdkafka (confluent-kafka, in the bench extra), so the producer takes little of the
    two cores the worker and the broker share."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "partitioner": "murmur2_random"})  # fmt: skip
    vehicles = 2_500
    template = '{"vehicle_id":"v%%d","corridor":"K%%d","lat":%%.6f,"lon":%%.6f,"timestamp":"%s","source":"bench"}'
    started = time.monotonic()
    sent = k = 0
    total = int(rate * seconds)
    while sent < total:
        elapsed = time.monotonic() - started
        stamp = datetime.now(UTC).isoformat()
        fmt = template % stamp
        due = min(total, int(elapsed * rate) + 1)
        while sent < due:
            v = sent % vehicles
            lat = -6.99 + (v % 100) * 1e-3 + (sent // vehicles) * 2e-5
            value = fmt % (v, 1 + v % 7, lat, 110.30 + ((v // 100) % 200) * 1e-3)
            producer.produce(TOPIC, value.encode(), key=f"v{v}".encode())
            sent += 1
        while k < probes and elapsed >= k * 0.05:
            probe = {"vehicle_id": f"probe-{k}", "lat": -6.99, "lon": 110.42, "timestamp": stamp}
            value = json.dumps(probe)
            producer.produce(TOPIC, value.encode(), key=f"probe-{k}".encode())
            k += 1
        producer.poll(0)
        time.sleep(0.005)
    producer.flush(30)


async def memory(vehicles: int, tmp: Path) -> Result | None:
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    try:
        await create_topics(bootstrap)
        (tmp / "memory").mkdir()
        load = Load(events=vehicles * 6, buses=vehicles, start=time.time() - 3600)
        worker = await spawn("sitroom", "sitroom_worker.py", "--bootstrap", bootstrap,
                             "--chdb", str(tmp / "memory"), "--mode", "memory",
                             "--events", str(load.events), "--input", "batched")  # fmt: skip
        await worker.wait_line("IDLE", 120)
        await produce(bootstrap, load.ticks(), False, load.events)
        return Result.parse(await worker.finish(600))
    finally:
        broker.stop()


async def scale(load: Load, tmp: Path) -> list[Result]:
    """Two workers of one group, each with its own chdb (one directory per process)."""
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    try:
        await create_topics(bootstrap)
        expected = tmp / "expected.json"
        await produce(bootstrap, load.ticks(), True, load.events)
        group = f"bench-scale-{uuid.uuid4().hex[:6]}"
        procs = []
        for i in range(2):
            (tmp / f"scale-{i}").mkdir()
            procs.append(await spawn("sitroom", "sitroom_worker.py", "--bootstrap", bootstrap,
                                     "--chdb", str(tmp / f"scale-{i}"), "--mode", "share",
                                     "--group", group, "--events", str(load.events),
                                     "--expected", str(expected)))  # fmt: skip
        outs = await asyncio.gather(*(p.finish(900) for p in procs))
        return [Result.parse(o) for o in outs]
    finally:
        broker.stop()


def table(results: list[Result], plain: dict[str, float], quix: float | None) -> str:
    rows = ["| consumer | input | events/s | vs plain loop | vs Quix | windows right | peak RSS MB |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        vs_plain = f"{r.rate / plain[r.input]:.2f}" if plain.get(r.input) else "-"
        vs_quix = f"{r.rate / quix:.2f}" if quix and r.input == "per-message" else "-"
        right = (
            "yes"
            if r.windows_wrong == 0
            else f"no ({r.windows_wrong:,} of {r.windows_expected:,} wrong)"
        )
        rows.append(f"| {r.consumer} | {r.input} | {r.rate:,.0f} | {vs_plain} | {vs_quix} | "
                    f"{right} | {r.peak_rss_mb:,.0f} |")  # fmt: skip
    return "\n".join(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--buses", type=int, default=500)
    parser.add_argument(
        "--skip", default="", help="comma-separated: plain,sitroom,quix,faust,latency,memory,scale"
    )
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--latency-rate", type=float, default=0.0,
                        help="events/s of the latency run (default: half the worker's per-message rate)")  # fmt: skip
    parser.add_argument("--vehicles", type=int, default=10_000, help="vehicles of the memory run")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the plain loop and the worker per input (median shown)")  # fmt: skip
    args = parser.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    names = [n for n in CONSUMERS if n not in skip]
    load = Load(events=args.events, buses=args.buses, start=float(int(time.time()) - 86400))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sitroom-bench-") as tmp_name:
        tmp = Path(tmp_name)
        results += await phase(load, True, names, tmp, args.repeat)
        results += await phase(load, False, [n for n in names if n in REPEATED], tmp, args.repeat)
        plain = {r.input: r.rate for r in results if r.consumer.startswith("plain")}
        quix = next((r.rate for r in results if r.consumer.lower().startswith("quix")), None)
        sitroom = next(
            (r for r in results if r.consumer == "sitroom worker" and r.input == "per-message"),
            None,
        )
        lat_line = mem = None
        shares: list[Result] = []
        try:
            live_rate = args.latency_rate or (sitroom.rate / 2 if sitroom else 0.0)
            if "latency" not in skip and live_rate:
                say(f"latency at {live_rate:,.0f} events/s …")
                lat_line = await latency(live_rate, args.latency_seconds, tmp)
                say(f"  {lat_line}")
            if "memory" not in skip:
                say(f"memory with {args.vehicles:,} vehicles …")
                mem = await memory(args.vehicles, tmp)
                say(f"  {mem}")
            if "scale" not in skip:
                say("two workers of one group …")
                shares = await scale(load, tmp)
        except Exception as exc:  # the table of what did finish is still worth printing
            say(f"a phase failed: {exc!r}")
    print(f"\n{datetime.now(UTC):%Y-%m-%d}, {machine()}; {load.events:,} positions of {load.buses} buses, "
          f"{PARTITIONS} partitions, embedded tansu + chdb per consumer\n")  # fmt: skip
    print(table(results, plain, quix))
    for r in results:
        if r.note.startswith("runs: "):
            print(f"{r.consumer} ({r.input}) {r.note} events/s")
    if lat_line:
        _, n, p50, p99, worst = lat_line.split()
        print(f"\nlatency produced → queryable at {live_rate:,.0f} events/s, one per message, "
              f"{n} probes: p50 {float(p50) * 1000:.0f} ms, "
              f"p99 {float(p99) * 1000:.0f} ms, max {float(worst) * 1000:.0f} ms")  # fmt: skip
    if mem is not None:
        print(
            f"\nmemory, {args.vehicles:,} vehicles tracked: peak RSS (VmHWM) {mem.peak_rss_mb:,.0f} MB; {mem.note}"
        )
    if shares:
        total = sum(r.events for r in shares)
        span = max(r.ended_at for r in shares) - min(r.started_at for r in shares)
        print(f"\ntwo workers of one group: {total:,} positions in {span:.1f} s = {total / span:,.0f} events/s "
              f"({', '.join(f'{r.events:,} ({r.note})' for r in shares)})")  # fmt: skip


def machine() -> str:
    import os
    import platform

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.machine())  # fmt: skip
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GB, Python {platform.python_version()}"


if __name__ == "__main__":
    asyncio.run(main())
