"""Prices give the same rows however the feed arrives (issue 8): (a) in order; (b) shuffled
within the allowed lateness, series interleaved; (c) in random batches with the state saved
and restored at random points; (d) with redeliveries; (e) beside a replay of another city's
market whose observations are hours older, which must give both sources the rows each gives
alone.

Rows are compared as ReplacingMergeTree ... FINAL shows them: the highest version per key.
``updated_at`` is left out: it is the wall time a row was computed, which legitimately
depends on when (and how often) the worker recomputed it; ``version`` decides which row
wins and must not.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alarm_rules import load_rules
from schemas.prices import day_start, load_commodities, load_markets
from schemas.settings import Settings
from schemas.spatial import gazetteer
from streams.pipeline import Emitted, Message, alarm_row
from streams.prices_logic import PricesPartition
from tests.unit import stream_orders as orders

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
BOOK, MARKETS, COMMODITIES, GAZETTEER = (
    load_rules(),
    load_markets(),
    load_commodities(),
    gazetteer(),
)
LATENESS = SETTINGS.window_allowed_lateness_s
D0 = date(2026, 11, 1)
DAYS = 10  # more than median_days, so changes against the previous days' median are made
OLDER_S = 30 * 3600.0  # the replayed source: more than a market day older
FIRST = ("pasar-johar", "pasar-bulu", "pasar-karangayu")
SECOND = ("kota-bandung",)  # another city: its own medians and market days
# A ceiling commodity (price_above_het) and a volatile one (price_spike).
PRICES = {"beras-premium": [13000.0, 14500.0, 15500.0, 17000.0], "cabai-rawit-merah": [40000.0, 52000.0, 70000.0]}  # fmt: skip
# Seconds after midnight WIB: pairs closer than the lateness (a shuffle swaps them), the
# working day, and the last seconds of the market day (a shuffle crosses midnight).
OFFSETS = [0, 4, 8 * 3600, 8 * 3600 + 3, 14 * 3600, 86400 - 7, 86400 - 1]
WALL = day_start(D0 + timedelta(days=DAYS + 1)).timestamp()

Event = dict[str, Any]


@st.composite
def series(draw: st.DrawFn, markets: Sequence[str], shift: float) -> list[orders.Timed[Event]]:
    """Each market's prices of each commodity: on most days one to three observations;
    some markets stop for days (market_silent)."""
    events: list[orders.Timed[Event]] = []
    for market in markets:
        stop = draw(st.sampled_from([DAYS, DAYS, DAYS // 2]))
        for commodity, prices in PRICES.items():
            key = f"{market}/{commodity}"
            for day in range(DAYS):
                if day >= stop or draw(st.integers(0, 5)) == 5:
                    continue
                d = D0 + timedelta(days=day)
                offsets = draw(st.sets(st.sampled_from(OFFSETS), min_size=1, max_size=3))
                for offset in sorted(offsets):
                    ts = day_start(d).timestamp() + offset - shift
                    ob = {"market_id": market, "commodity_id": commodity, "unit": "kg",
                          "price_idr": draw(st.sampled_from(prices)),
                          "date": (day_start(d) - timedelta(seconds=shift)).date().isoformat(),
                          "observed_at": datetime.fromtimestamp(ts, UTC).isoformat()}  # fmt: skip
                    events.append((key, ts, ob))
    return sorted(events, key=lambda e: (e[1], e[0]))


Rows = dict[str, dict[Hashable, tuple[Any, ...]]]
Key = Callable[[Sequence[Any]], Hashable]
Compared = Callable[[Sequence[Any]], tuple[Any, ...]]
# table → (key, version, columns compared): ReplacingMergeTree's ORDER BY and version.
TABLES: dict[str, tuple[Key, Key | None, Compared]] = {
    "prices_observations": (lambda r: tuple(r[:4]), None, tuple),
    "prices_daily": (lambda r: tuple(r[:3]), lambda r: r[15], lambda r: (*r[:14], r[15])),
    "prices_city_daily": (lambda r: tuple(r[:3]), lambda r: r[12], lambda r: (*r[:11], r[12])),
    "alarms": (lambda r: r[0], lambda r: r[10], tuple),
    "alarm_transitions": (lambda r: (r[0], r[10]), None, tuple),
}


class Run:
    def __init__(self) -> None:
        self.part = self._new(None)
        self.now = datetime.fromtimestamp(WALL, UTC)
        self.inserted: dict[str, list[Sequence[Any]]] = {t: [] for t in TABLES}

    @staticmethod
    def _new(saved: bytes | None) -> PricesPartition:
        return PricesPartition(SETTINGS, BOOK, MARKETS, COMMODITIES, GAZETTEER, saved)

    def batch(self, events: Sequence[orders.Timed[Event]]) -> None:
        """One message, then the tick the pipeline runs after every batch."""
        out = Emitted()
        msg = Message("prices.observations", 0, self.part.offset("p") + 1, None,
                      orjson.dumps([e for _, _, e in events]))  # fmt: skip
        _, rejected = self.part.handle(msg, self.now, out)
        assert rejected == []
        self.part.tick(self.now, out)
        self.keep(out)

    def keep(self, out: Emitted) -> None:
        for table, (_, rows) in out.tables.items():
            self.inserted[table].extend(rows)
        self.inserted["alarms"].extend(alarm_row(a) for a in out.alarms)
        self.inserted["alarm_transitions"].extend(alarm_row(a) for a in out.alarms)

    def rows(self) -> Rows:
        out = Emitted()  # a day on: whatever the partition still holds is written
        self.part.tick(datetime.fromtimestamp(WALL + 86400, UTC), out)
        self.keep(out)
        final: Rows = {}
        for table, (key, version, compared) in TABLES.items():
            kept = orders.last_versions(self.inserted[table], key, version)
            final[table] = {k: compared(r) for k, r in kept.items()}
        return final


def one_by_one(events: Sequence[orders.Timed[Event]]) -> Rows:
    run = Run()
    for e in events:
        run.batch([e])
    return run.rows()


def part(rows: Rows, markets: Sequence[str]) -> Rows:
    """The rows of one source: its markets' series and alarms, its city's medians."""
    cities = {m.city for m in MARKETS.markets if m.id in markets}
    mine: dict[str, Callable[[Sequence[Any]], bool]] = {
        "prices_observations": lambda r: r[0] in markets,
        "prices_daily": lambda r: r[0] in markets,
        "prices_city_daily": lambda r: r[0] in cities,
        "alarms": lambda r: str(r[2]).split("/")[0] in markets,
        "alarm_transitions": lambda r: str(r[2]).split("/")[0] in markets,
    }
    return {t: {k: r for k, r in rs.items() if mine[t](r)} for t, rs in rows.items()}


@settings(max_examples=40, deadline=None, report_multiple_bugs=False)
@given(first=series(FIRST, 0.0), second=series(SECOND, OLDER_S), seed=st.integers(0, 2**32 - 1))
def test_every_delivery_gives_the_rows_of_the_in_order_run(
    first: list[orders.Timed[Event]], second: list[orders.Timed[Event]], seed: int
) -> None:
    rng = random.Random(seed)
    expected = one_by_one(first)  # (a)
    assert expected["prices_daily"] and expected["prices_city_daily"]

    shuffled = one_by_one(orders.shuffled_within_lateness(rng, first, LATENESS))  # (b)
    assert shuffled == expected

    run = Run()  # (c)
    saved, at, i, crashed = run.part.dumps(), 0, 0, False
    while i < len(first):
        n = rng.randint(1, max(1, len(first) // 3))
        run.batch(first[i : i + n])
        i += n
        if rng.random() < 0.5:
            saved, at, crashed = run.part.dumps(), i, False  # the checkpoint committed
        elif not crashed and rng.random() < 0.5:
            # A crash after the rows were written, before the checkpoint: the events since
            # the last checkpoint are read again, in other batches.
            run.part, i, crashed = Run._new(saved), at, True
    assert run.rows() == expected

    assert one_by_one(orders.with_duplicates(rng, first)) == expected  # (d)
    shuffled = one_by_one(
        orders.with_duplicates(rng, orders.shuffled_within_lateness(rng, first, LATENESS))
    )
    assert shuffled == expected

    both = one_by_one(orders.interleaved(rng, first, second))  # (e)
    assert part(both, FIRST) == expected
    assert part(both, SECOND) == part(one_by_one(second), SECOND)
