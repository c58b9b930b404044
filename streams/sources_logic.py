"""Source freshness: connectors' heartbeats become a status row per connector instance and
a ``source_silent`` alarm when a connector has published nothing for longer than its limit.

Silence is measured from the connector's own last-publish time, so it works whether the
connector is alive but its upstream went quiet (heartbeats keep coming) or the connector is
gone. While heartbeats come, it is judged at each heartbeat in the heartbeat's own time,
once the connector's clock less the lateness has passed it (so beats swapped in transit
judge as in order); once no heartbeat has come for the lateness, on the wall clock (a
connector that is gone sends nothing to move a clock).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from prometheus_client import Gauge

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.sources import ConnectorState, SourceHeartbeat
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.checkpoints import Checkpoints
from streams.partition import ItemPartition
from streams.pipeline import Emitted, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.validation import future_problem
from streams.windows import ArrivalClock

SOURCE_SILENCE = Gauge(
    "sitroom_source_silence_seconds",
    "Seconds since the connector last published an event (as the worker sees it)",
    ["connector"],
)
# Instances that stopped, or were lost (still "running" but no heartbeat), this long ago
# are history, not state: every restart of a connector makes a new instance.
FORGET_AFTER_S = 24 * 3600.0


@dataclass
class Instance:
    state: str
    started: float
    heartbeat: float
    last_event: float | None = None


@dataclass
class Beat:
    """A heartbeat not yet judged."""

    at: float
    instance: str
    state: str
    started: float
    last_event: float | None


@dataclass
class SourcesState:
    offset: int = -1
    # Per connector, its instances as judged (heartbeats applied in their own time).
    connectors: dict[str, dict[str, Instance]] = field(default_factory=dict)
    pending: dict[str, list[Beat]] = field(default_factory=dict)
    clocks: dict[str, ArrivalClock] = field(default_factory=dict)
    alarms: EngineState = field(default_factory=EngineState)


def newest_instance(instances: dict[str, Instance]) -> str:
    """The instance started last. Two started in the same second (a restart, another host)
    are told apart by name, not by which heartbeat arrived first: the dict keeps arrival
    order, and the connector's judged state must not depend on it."""
    return max(instances, key=lambda name: (instances[name].started, name))


def silence(instances: dict[str, Instance], now: float) -> tuple[float, Instance] | None:
    """Seconds the connector has been silent, judged by its newest instance; None when it
    finished (a replay at the end of its input is quiet on purpose)."""
    newest = instances[newest_instance(instances)]
    if newest.state == ConnectorState.FINISHED:
        return None
    events = [i.last_event for i in instances.values() if i.last_event is not None]
    since = max([*events, newest.started])
    return max(0.0, now - since), newest


def forget_old_instances(instances: dict[str, Instance], now: float) -> bool:
    """Drop instances whose last heartbeat is older than FORGET_AFTER_S, whatever state they
    claimed (a killed process never says "stopped"); the newest instance always stays so
    the connector's silence can still be judged. True when any was dropped."""
    newest = newest_instance(instances)
    old = [n for n, i in instances.items() if n != newest and now - i.heartbeat > FORGET_AFTER_S]
    for name in old:
        del instances[name]
    return bool(old)


class SourcesPartition(ItemPartition[SourceHeartbeat]):
    model = SourceHeartbeat

    def __init__(self, settings: Settings, book: RuleBook, saved: bytes | None = None) -> None:
        self.settings = settings
        self.cfg = book.sources
        self.lateness = settings.window_allowed_lateness_s
        self.state = msgspec.json.decode(saved, type=SourcesState) if saved else SourcesState()
        self.alarms = AlarmEngine(book, self.state.alarms)

    def apply(self, hb: SourceHeartbeat, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        future = future_problem(hb.at, now, self.settings.max_future_s)
        if future:
            return future
        at, wall = hb.at.timestamp(), now.timestamp()
        known = self.state.connectors.get(hb.connector, {}).get(hb.instance)
        if known is not None and known.heartbeat >= at:
            return None  # older than one already judged: says nothing new
        last = hb.last_event_at.timestamp() if hb.last_event_at else None
        beat = Beat(at, hb.instance, hb.state.value, hb.started_at.timestamp(), last)
        pending = self.state.pending.setdefault(hb.connector, [])
        if beat in pending:
            return None  # redelivered
        bisect.insort(pending, beat, key=lambda b: (b.at, b.instance))
        self.state.clocks.setdefault(hb.connector, ArrivalClock()).arrive(at, wall)
        out.add(ddl.SOURCE_STATUS, ddl.SOURCE_STATUS_COLUMNS,
                [(hb.connector, hb.instance, hb.state.value, hb.topics, hb.events_total,
                  hb.last_event_at, hb.started_at, hb.at)])  # fmt: skip
        return None

    def tick(self, now: datetime, out: Emitted) -> bool:
        now_ts = now.timestamp()
        before, changed = len(out.alarms), False
        stale_beat = 3 * self.settings.source_heartbeat_s
        for connector in sorted(set(self.state.connectors) | set(self.state.pending)):
            instances = self.state.connectors.setdefault(connector, {})
            clock = self.state.clocks.setdefault(connector, ArrivalClock())
            settled = clock.settled(now_ts, self.lateness)
            pending = self.state.pending.get(connector, [])
            n = 0
            while n < len(pending) and pending[n].at < settled:
                b = pending[n]
                known = instances.get(b.instance)
                if known is None or known.heartbeat < b.at:
                    instances[b.instance] = Instance(b.state, b.started, b.at, b.last_event)
                    self._judge(connector, instances, b.at, stale_beat, out)
                n += 1
            if n:
                del pending[:n]
                changed = True
            if not pending:
                self.state.pending.pop(connector, None)
            if not instances:
                continue
            changed = forget_old_instances(instances, now_ts) or changed
            if now_ts - clock.arrived_at >= self.lateness:
                self._judge(connector, instances, now_ts, stale_beat, out)
        return changed or len(out.alarms) > before

    def _judge(self, connector: str, instances: dict[str, Instance], at: float,
               stale_beat: float, out: Emitted) -> None:  # fmt: skip
        judged = silence(instances, at)
        limit = self.cfg.limit_for(connector)
        if judged is None:
            SOURCE_SILENCE.labels(connector).set(0)
            out.alarms.extend(self.alarms.observe("source_silent", connector, at, 0.0))
            return
        silent_s, newest = judged
        SOURCE_SILENCE.labels(connector).set(silent_s)
        alive = newest.state == ConnectorState.RUNNING and at - newest.heartbeat < stale_beat
        context: Context = {
            "connector": connector,
            "silent_s": round(silent_s, 1),
            "limit_s": limit,
            "connector_alive": alive,
            "connector_state": newest.state if alive or newest.state != "running" else "lost",
            "last_heartbeat_age_s": round(at - newest.heartbeat, 1),
        }
        out.alarms.extend(
            self.alarms.observe("source_silent", connector, at, silent_s / limit, context)
        )


def sources_pipeline(
    settings: Settings, book: RuleBook, sink: BaseSink, checkpoints: Checkpoints,
    producer: Producer, highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:  # fmt: skip
    def factory(key: StateKey, saved: bytes | None) -> SourcesPartition:
        return SourcesPartition(settings, book, saved)

    return Pipeline(
        "sources", settings, sink, checkpoints, producer, factory, highwater=highwater, clock=clock
    )
