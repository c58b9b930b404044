"""`sitroom status`: what a running system is doing, in one screen.

What is up (API, ClickHouse, broker, worker metrics), consumer lag per topic, silent
sources, active alarms by domain and dead letters of the last hour. It asks the API (as any
client would; everything it reads is public) and the broker (for the lag), so it works the
same against `sitroom up` and a production deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from schemas.catalog import CATALOG
from schemas.settings import Settings
from streams.batch_consumer import batch_group

# A connector quiet this long (by its heartbeats' last event) is called silent here; the
# alarm rules decide when it is an alarm.
SILENT_AFTER_S = 300.0


@dataclass
class Status:
    api: str
    up: dict[str, bool | None] = field(default_factory=dict)  # None: cannot tell from here
    lag: dict[str, int] = field(default_factory=dict)
    silent: list[tuple[str, float | None]] = field(default_factory=list)
    alarms: dict[str, dict[str, int]] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def render(self) -> str:
        def mark(ok: bool | None) -> str:
            return "?" if ok is None else ("up" if ok else "DOWN")

        lines = [f"sitroom status ({self.api})"]
        lines.append("up:            " + "  ".join(f"{k} {mark(v)}" for k, v in self.up.items()))
        behind = {t: n for t, n in self.lag.items() if n}
        lines.append("consumer lag:  " + (", ".join(f"{t} {n:,}" for t, n in sorted(behind.items()))
                                          if behind else "none (every topic read to its end)"))  # fmt: skip
        lines.append("silent:        " + (", ".join(
            f"{c} ({'no event yet' if s is None else f'{s / 60:.0f} min'})"
            for c, s in self.silent) or "none"))  # fmt: skip
        if self.alarms:
            lines.append("active alarms: " + ", ".join(
                f"{d} {sum(n.values())} ({', '.join(f'{s} {k}' for s, k in sorted(n.items()))})"
                for d, n in sorted(self.alarms.items())))  # fmt: skip
        else:
            lines.append("active alarms: none")
        lines.append("dead letters (last hour): " + (", ".join(
            f"{s} {n:,}" for s, n in sorted(self.dead_letters.items())) or "none"))  # fmt: skip
        lines += [f"! {p}" for p in self.problems]
        return "\n".join(lines)

    @property
    def healthy(self) -> bool:
        return all(v is not False for v in self.up.values())


async def gather(settings: Settings, api: str, bootstrap: str | None) -> Status:
    status = Status(api=api)
    async with httpx.AsyncClient(base_url=api, timeout=10.0) as client:
        try:
            ready = (await client.get("/readyz")).json()
            status.up["api"] = True
            status.up["clickhouse"] = bool(ready.get("clickhouse"))
            status.up["broker"] = bool(ready.get("broker"))
            situation = (await client.get("/v1/situation")).json()
        except (httpx.HTTPError, ValueError) as exc:
            status.up["api"] = False
            status.problems.append(f"the API at {api} does not answer: {exc}")
            situation = None
    metrics = await _worker_metrics(api, settings)
    status.up["worker"] = metrics is not None or None
    if metrics is None:
        status.problems.append(
            "no worker metrics reachable from here (the API's /metrics under `up`, "
            f"else port {settings.metrics_port}): worker state and lag unknown"
        )
    if situation is not None:
        _read_situation(status, situation)
    if metrics is not None:
        status.lag = lag_from_metrics(metrics)
    elif bootstrap is None:
        status.problems.append("consumer lag unknown: no broker address (SITROOM_KAFKA_BOOTSTRAP)")
    else:
        try:
            status.lag = await asyncio.wait_for(lag(bootstrap, settings.app_id), 15.0)
        except Exception as exc:  # the rest of the report is still worth printing
            status.problems.append(f"consumer lag unknown: {exc}")
    return status


async def _worker_metrics(api: str, settings: Settings) -> str | None:
    """The worker's Prometheus text: in the API's process under `up`, else on the metrics
    port of this host."""
    urls = [f"{api}/metrics"]
    if settings.metrics_port:
        urls.append(f"http://127.0.0.1:{settings.metrics_port}/metrics")
    async with httpx.AsyncClient(timeout=5.0) as client:
        for url in urls:
            with contextlib.suppress(httpx.HTTPError):
                r = await client.get(url)
                if r.status_code == 200 and "sitroom_events_consumed_total" in r.text:
                    return r.text
    return None


def lag_from_metrics(text: str) -> dict[str, int]:
    """Per topic, the sum of the worker's own sitroom_consumer_lag over its partitions."""
    out: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "sitroom_consumer_lag":
            continue
        for sample in family.samples:
            topic = sample.labels.get("topic", "")
            out[topic] = out.get(topic, 0) + int(sample.value)
    return out


def _read_situation(status: Status, situation: dict[str, Any]) -> None:
    status.alarms = situation.get("active_alarms") or {}
    status.dead_letters = (situation.get("counts", {}).get("dead_letters", {})
                           .get("last_hour_by_source") or {})  # fmt: skip
    for c in situation.get("connectors") or []:
        if c.get("state") != "running":
            continue  # a finished replay is not silent
        silent = c.get("silent_s")
        # None: nothing published yet, which a connector just started may well be.
        if silent is not None and silent > SILENT_AFTER_S:
            status.silent.append((c["connector"], silent))


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def lag(bootstrap: str, app_id: str) -> dict[str, int]:
    """Messages not yet committed by the worker's groups, per topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed: dict[TopicPartition, int] = {}
        for group in (app_id, batch_group(app_id)):
            offsets = await admin.list_consumer_group_offsets(group)
            for tp, meta in offsets.items():
                if meta is not None and meta.offset >= 0:
                    committed[tp] = max(committed.get(tp, 0), meta.offset)
        topics = {spec.name for spec in CATALOG}
        tps = [tp for tp in committed if tp.topic in topics]
        ends = await consumer.end_offsets(tps) if tps else {}
        out: dict[str, int] = {}
        for tp in tps:
            out[tp.topic] = out.get(tp.topic, 0) + max(0, ends.get(tp, 0) - committed[tp])
        return out
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="what a running system is doing, in one screen")
    p.add_argument("--api", help="the API's base URL (default: SITROOM_API_HOST:PORT)")


async def run(settings: Settings, args: argparse.Namespace, bootstrap: str | None) -> int:
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "[::]") else settings.api_host
    api = args.api or f"http://{host}:{settings.api_port}"
    status = await gather(settings, api, bootstrap)
    print(status.render())
    return 0 if status.healthy else 1
