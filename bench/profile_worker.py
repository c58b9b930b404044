"""Where the worker's time goes: preload a fresh embedded broker with the benchmark's load,
run the plain loop and the sitroom worker against it, and, with ``--spy``, record the
worker with py-spy (``pip install py-spy``; not a project dependency).

    python bench/profile_worker.py [--input batched] [--events 200000] [--spy]

Prints each consumer's rate; with ``--spy`` writes py-spy's raw stacks (one thread per
stack root, idle included) to ``--out`` and a summary of where the worker's batch
handling spends its samples.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import side_by_side as sbs
from sitroom.embedded_broker import EmbeddedBroker


def summary(raw: Path, root: str = "Pipeline.handle_batch", top: int = 30) -> None:
    """Inclusive and self share of each function under ``root``."""
    incl: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        frames = stack.split(";")
        at = next((i for i, f in enumerate(frames) if root in f), None)
        if at is None:
            continue
        sub = [re.sub(r":\d+\)", ")", f) for f in frames[at:]]
        total += n
        own[sub[-1]] += n
        for f in set(sub):
            incl[f] += n
    print(f"{root}: {total} samples")
    for name, counter in (("inclusive", incl), ("self", own)):
        print(f"-- {name}")
        for f, samples in counter.most_common(top):
            print(f"{100 * samples / max(total, 1):5.1f}% {f}")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--input", choices=["per-message", "batched"], default="batched")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--spy", action="store_true")
    p.add_argument("--out", type=Path, default=Path("worker-profile.txt"))
    args = p.parse_args()
    load = sbs.Load(events=args.events, buses=500, start=float(int(time.time()) - 86400))
    tmp = Path(tempfile.mkdtemp())
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    try:
        await sbs.create_topics(bootstrap)
        await sbs.produce(bootstrap, load.ticks(), args.input == "per-message", load.events)
        expected = tmp / "expected.json"
        expected.write_text(json.dumps(sbs.expected_windows(load)))
        for peer in ("plain", "sitroom"):
            data = tmp / peer
            data.mkdir()
            cmd = [sys.executable, str(sbs.PEERS / sbs.CONSUMERS[peer]), "--bootstrap",
                   bootstrap, "--topic", sbs.TOPIC, "--input", args.input, "--events",
                   str(args.events), "--expected", str(expected), "--chdb", str(data),
                   "--group", f"profile-{uuid.uuid4().hex[:6]}"]  # fmt: skip
            if args.spy and peer == "sitroom":
                cmd = ["py-spy", "record", "-r", "200", "--threads", "--idle", "-f", "raw",
                       "-o", str(args.out), "--", *cmd]  # fmt: skip
            done = await asyncio.to_thread(
                subprocess.run, cmd, capture_output=True, text=True, timeout=1200
            )
            result = sbs.Result.parse(done.stdout)
            print(f"\n{peer}: {result.rate:,.0f} events/s ({args.input})", flush=True)
        if args.spy:
            summary(args.out)
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
