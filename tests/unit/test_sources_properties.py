"""Source heartbeats give the same status rows and the same judgement of silence however
they arrive (issue 8): (a) in order; (b) shuffled within the lateness, instances
interleaved; (c) in random batches with the state saved and restored at random points;
(d) with redeliveries; (e) beside a replay of another connector's heartbeats hours older.

What is compared: ``source_status`` as ReplacingMergeTree(heartbeat_at) ... FINAL shows it,
every alarm row (the last version of each alarm) emitted while the feed is read and at a
closing tick, and then each connector's judged silence and its alarm level. Heartbeats are
judged in their own time once settled, so one that arrives before an older one does not
count as news for a moment.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alarm_rules import load_rules
from schemas.settings import Settings
from schemas.sources import ConnectorState, SourceHeartbeat
from streams.pipeline import Emitted, Message, alarm_row
from streams.sources_logic import SourcesPartition, silence
from tests.unit import stream_orders as orders

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
BOOK = load_rules()
LATENESS = SETTINGS.window_allowed_lateness_s
T0 = 1_780_000_000.0
SPAN_S = 1800.0
OLDER_S = 5 * 3600.0
WALL = T0 + SPAN_S + 60  # held still while feeding
CLOSE = WALL + 300  # the closing tick: some connectors silent by then, some not

Timed = orders.Timed[SourceHeartbeat]


@st.composite
def beats(draw: st.DrawFn, connectors: Sequence[str], shift: float) -> list[Timed]:
    """Each connector's instances beat every 15 s; a restart is a new instance that may
    start in the same second as the old one; the last beat may say stopped or finished."""
    out: list[Timed] = []
    for connector in connectors:
        for k in range(draw(st.integers(1, 2))):
            started = T0 - shift + draw(st.sampled_from([0, 0, 300]))
            last: float | None = None
            n = draw(st.integers(1, 12))
            for i in range(n):
                at = started + 15 * (i + 1) + draw(st.sampled_from([0, 3]))
                if draw(st.integers(0, 2)) == 0:
                    last = at - draw(st.sampled_from([0, 5]))
                final = i == n - 1
                state = draw(st.sampled_from(["running", "stopped", "finished"])) if final else "running"  # fmt: skip
                hb = SourceHeartbeat(
                    connector=connector, instance=f"host:{k}",
                    at=datetime.fromtimestamp(at, UTC), state=ConnectorState(state),
                    topics=["t"], events_total=i,
                    last_event_at=None if last is None else datetime.fromtimestamp(last, UTC),
                    started_at=datetime.fromtimestamp(started, UTC),
                )  # fmt: skip
                out.append((f"{connector}/{k}", at, hb))
    return sorted(out, key=lambda e: (e[1], e[0]))


Judged = dict[str, Any]


class Run:
    def __init__(self) -> None:
        self.part = SourcesPartition(SETTINGS, BOOK)
        self.now = datetime.fromtimestamp(WALL, UTC)
        self.status: list[Sequence[Any]] = []
        self.alarms: list[Sequence[Any]] = []

    def batch(self, events: Sequence[Timed]) -> None:
        out = Emitted()
        for _, _, hb in events:  # one heartbeat per message, as connectors send them
            offset = self.part.offset("h") + 1
            msg = Message("sitroom.source-heartbeats", 0, offset, None, hb.model_dump_json().encode())  # fmt: skip
            _, rejected = self.part.handle(msg, self.now, out)
            assert rejected == []
        self.part.tick(self.now, out)
        self.status += out.tables.get("source_status", ((), []))[1]
        self.alarms += [alarm_row(a) for a in out.alarms]

    def restore(self) -> None:
        self.part = SourcesPartition(SETTINGS, BOOK, self.part.dumps())

    def result(self, connectors: Sequence[str]) -> tuple[Any, Any, Judged]:
        out = Emitted()
        self.part.tick(datetime.fromtimestamp(CLOSE, UTC), out)
        self.alarms += [alarm_row(a) for a in out.alarms]
        rows = orders.last_versions(
            [r for r in self.status if r[0] in connectors], lambda r: (r[0], r[1]), lambda r: r[7]
        )
        alarms = orders.last_versions(
            [r for r in self.alarms if r[2] in connectors], lambda r: r[0], lambda r: r[10]
        )
        judged: Judged = {}
        for c in connectors:
            s = silence(self.part.state.connectors[c], CLOSE)
            m = self.part.state.alarms.machines.get(f"source_silent/{c}")
            judged[c] = (s and (s[0], s[1].state, s[1].started), m.level if m else 0)
        return rows, alarms, judged


def one_by_one(events: Sequence[Timed], connectors: Sequence[str]) -> tuple[Any, Any, Judged]:
    run = Run()
    for e in events:
        run.batch([e])
    return run.result(connectors)


LIVE, REPLAYED = ("gtfs-rt", "flood-mqtt"), ("price-replay",)


@settings(max_examples=50, deadline=None)
@given(first=beats(LIVE, 0.0), second=beats(REPLAYED, OLDER_S), seed=st.integers(0, 2**32 - 1))
def test_every_delivery_gives_the_status_and_silence_of_the_in_order_run(
    first: list[Timed], second: list[Timed], seed: int
) -> None:
    rng = random.Random(seed)
    expected = one_by_one(first, LIVE)  # (a)
    assert expected[0]

    shuffled = orders.shuffled_within_lateness(rng, first, LATENESS)  # (b)
    assert one_by_one(shuffled, LIVE) == expected

    run = Run()  # (c)
    for batch in orders.batches(rng, first):
        run.batch(batch)
        if rng.random() < 0.5:
            run.restore()
    assert run.result(LIVE) == expected

    reshuffled = orders.shuffled_within_lateness(rng, first, LATENESS)
    assert one_by_one(orders.with_duplicates(rng, reshuffled), LIVE) == expected  # (d)

    mixed = orders.interleaved(rng, first, second)  # (e)
    assert one_by_one(mixed, LIVE) == expected
    assert one_by_one(mixed, REPLAYED) == one_by_one(second, REPLAYED)
