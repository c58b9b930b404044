from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from schemas.alarm_rules import load_rules
from schemas.deadletter import Reason
from schemas.prices import load_commodities, load_markets
from schemas.settings import Settings
from schemas.spatial import gazetteer
from streams.pipeline import Emitted, Message
from streams.prices_logic import PricesPartition

D0 = date(2026, 11, 1)
NOW = datetime(2026, 11, 28, tzinfo=UTC)
SETTLE = timedelta(seconds=Settings(_env_file=None).window_allowed_lateness_s + 1)  # type: ignore[call-arg]


def ob(market: str, commodity: str, day: int, price: float, hour: int = 10, **kw: Any) -> dict[str, Any]:  # fmt: skip
    d = D0 + timedelta(days=day)
    at = datetime(d.year, d.month, d.day, hour - 7, tzinfo=UTC)  # hour is WIB
    unit = load_commodities().by_id()[commodity].unit if commodity in load_commodities().by_id() else "kg"  # fmt: skip
    return {"market_id": market, "commodity_id": commodity, "unit": unit, "price_idr": price,
            "date": d.isoformat(), "observed_at": at.isoformat(), **kw}  # fmt: skip


def partition(saved: bytes | None = None) -> PricesPartition:
    return PricesPartition(Settings(_env_file=None), load_rules(), load_markets(), load_commodities(),  # type: ignore[call-arg]
                           gazetteer(), saved)  # fmt: skip


def feed(part: PricesPartition, *messages: list[dict[str, Any]]) -> tuple[Emitted, list[Any]]:
    out, rejected = Emitted(), []
    for offset, items in enumerate(messages, start=part.offset("p") + 1):
        msg = Message("prices.observations", 0, offset, None, orjson.dumps(items))
        rejected += part.handle(msg, NOW, out)[1]
    # A moment past the lateness: alarms are judged once the observations have settled.
    part.tick(NOW + SETTLE, out)
    return out, rejected


def rows(out: Emitted, table: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The last row per key, as ClickHouse keeps them (updated_at only grows)."""
    keyed: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for r in out.tables.get(table, ((), []))[1]:
        key = (r[0], r[1], r[2])
        keyed[key] = tuple(r)
    return keyed


def test_the_last_observation_of_the_day_wins() -> None:
    part = partition()
    out, rejected = feed(
        part,
        [ob("pasar-johar", "gula", 0, 17000, hour=9), ob("pasar-johar", "gula", 0, 17200, hour=14)],
        [ob("pasar-johar", "gula", 0, 16000, hour=8)],  # earlier in the day: does not win
    )
    assert rejected == []
    daily = rows(out, "prices_daily")
    assert daily[("pasar-johar", "gula", D0)][7] == 17200
    assert daily[("pasar-johar", "gula", D0)][4] == "Semarang Tengah"
    assert len(out.tables["prices_observations"][1]) == 3  # every observation is kept raw


def test_city_median_and_change_against_the_previous_days_median() -> None:
    part = partition()
    history = [[ob(m, "bawang-merah", d, 30000 + 1000 * d + k * 500) for k, m in
                enumerate(["pasar-johar", "pasar-bulu", "pasar-karangayu"])] for d in range(8)]  # fmt: skip
    out, _ = feed(part, *history, [ob("kota-bandung", "bawang-merah", 7, 99000)])
    city = rows(out, "prices_city_daily")
    last = city[("kota-semarang", "bawang-merah", D0 + timedelta(days=7))]
    # day d's median is the middle market: 30500 + 1000 d; the previous 7 days' median is day 3's
    assert last[3:7] == (37500, 37000, 38000, 3)
    assert last[7] == 36500 and last[8] == round((37500 / 36500 - 1) * 100, 3)
    assert last[9] == 33500 and last[10] == round((37500 / 33500 - 1) * 100, 3)
    # another city never enters Semarang's median
    assert city[("kota-bandung", "bawang-merah", D0 + timedelta(days=7))][3] == 99000
    first = city[("kota-semarang", "bawang-merah", D0)]
    assert first[7] is None and first[9] is None  # no history yet
    market = rows(out, "prices_daily")[("pasar-johar", "bawang-merah", D0 + timedelta(days=7))]
    assert market[10:14] == (36000, round((37000 / 36000 - 1) * 100, 3), 33000, round((37000 / 33000 - 1) * 100, 3))  # fmt: skip


def test_a_late_day_recomputes_the_following_days() -> None:
    part = partition()
    out, _ = feed(part, [ob("pasar-johar", "telur-ayam", d, 27000) for d in (0, 1, 3)])
    assert rows(out, "prices_daily")[("pasar-johar", "telur-ayam", D0 + timedelta(days=3))][10] == 27000  # fmt: skip
    out, _ = feed(part, [ob("pasar-johar", "telur-ayam", 2, 30000)])
    later = rows(out, "prices_daily")[("pasar-johar", "telur-ayam", D0 + timedelta(days=3))]
    assert later[10] == 30000 and later[11] == -10.0


def test_price_above_the_ceiling_raises_and_clears() -> None:
    part = partition()
    out, _ = feed(part, [ob("pasar-jatingaleh", "beras-premium", 0, 15500)],
                  [ob("pasar-jatingaleh", "beras-premium", 1, 17000)],
                  [ob("pasar-jatingaleh", "beras-premium", 2, 14500)])  # fmt: skip
    steps = [(a.kind, a.entity, a.state.value, a.level) for a in out.alarms if a.kind == "price_above_het"]  # fmt: skip
    assert steps == [
        ("price_above_het", "pasar-jatingaleh/beras-premium", "raised", "above ceiling"),
        ("price_above_het", "pasar-jatingaleh/beras-premium", "updated", "far above ceiling"),
        ("price_above_het", "pasar-jatingaleh/beras-premium", "cleared", "normal"),
    ]
    assert out.alarms[0].context["ceiling_idr"] == 14900.0


def test_day_over_day_spike() -> None:
    part = partition()
    out, _ = feed(part, *[[ob("pasar-johar", "cabai-rawit-merah", d, p)] for d, p in
                          enumerate([40000, 41000, 52000, 53000])])  # fmt: skip
    spikes = [(a.state.value, round(a.value, 1)) for a in out.alarms if a.kind == "price_spike"]
    assert spikes == [("raised", 26.8), ("cleared", 26.8)]  # +26.8 %, then +1.9 %


def test_a_market_that_stops_reporting_while_others_go_on() -> None:
    part = partition()
    reporting = {d: ("pasar-johar", "pasar-bulu") if d < 2 else ("pasar-johar",) for d in range(5)}
    days = [[ob(m, "gula", d, 17000) for m in markets] for d, markets in reporting.items()]
    out, _ = feed(part, *days)
    silent = [(a.entity, a.state.value, a.value) for a in out.alarms if a.kind == "market_silent"]
    assert silent == [("pasar-bulu", "raised", 2.0)]  # days 2 and 3 passed without it
    # a market that never reported is not "silent": it may simply not be covered
    assert all(a.entity != "pasar-karangayu" for a in out.alarms)
    out, _ = feed(partition(part.dumps()), [ob("pasar-bulu", "gula", 5, 17000)])
    assert [(a.entity, a.state.value) for a in out.alarms] == [("pasar-bulu", "cleared")]


def test_bad_observations_are_rejected_with_a_reason() -> None:
    part = partition()
    future = NOW + timedelta(days=3)
    _, rejected = feed(part, [
        ob("pasar-entah", "gula", 0, 17000),
        ob("pasar-johar", "durian", 0, 17000),
        ob("pasar-johar", "minyakita", 0, 15000, unit="kg"),
        ob("pasar-johar", "beras-premium", 0, 14000, grade="medium"),
        ob("pasar-johar", "gula", 0, 0),
        ob("pasar-johar", "gula", 0, 90_000_000),
        {**ob("pasar-johar", "gula", 0, 17000), "date": future.date().isoformat()},
        ob("pasar-johar", "gula", 0, 17000),
    ])  # fmt: skip
    assert [r.reason for r in rejected] == [
        Reason.SCHEMA, Reason.UNKNOWN_ENTITY, Reason.UNKNOWN_ENTITY, Reason.IMPOSSIBLE_VALUE,
        Reason.IMPOSSIBLE_VALUE, Reason.IMPOSSIBLE_VALUE, Reason.FUTURE_TIMESTAMP,
    ]  # fmt: skip
    assert part.state.series == {"pasar-johar/gula": part.state.series["pasar-johar/gula"]}


def test_state_stays_bounded_over_a_long_run() -> None:
    part = partition()
    history = part.cfg.history_days
    markets = ("pasar-johar", "pasar-karangayu")
    for day in range(-120, 0, 3):  # four months of prices at two markets, in batches
        _, rejected = feed(part, [ob(m, "beras-medium", d, 13000 + d) for m in markets
                                  for d in range(day, day + 3)])  # fmt: skip
        assert rejected == []
    assert set(part.state.series) == {f"{m}/beras-medium" for m in markets}
    for series in part.state.series.values():
        assert len(series) <= history + 1
    assert all(len(days) <= history for days in part.state.city_days.values())
    # One machine per (kind, market/commodity) or market at most, whatever the run length.
    assert len(part.state.alarms.machines) <= 3 * 2
