"""Staple-food prices: the daily price per market and commodity (the day's last observation
wins), the city median per commodity and day, change against the previous day and against
the median of the previous days, and alarms for prices above the government ceiling
(HET/HAP), day-over-day spikes and markets that stopped reporting.

Everything runs on the event clock (market days), so a replay of last month's file raises
the alarms a live run would have raised. Rows are written as observations arrive; alarms
are judged observation by observation in event time once the city's clock, less the
lateness, has passed them, so two observations swapped in transit raise what the in-order
feed raises."""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.catalog import PRICE_OBSERVATIONS
from schemas.deadletter import Reason
from schemas.prices import CommodityRegistry, MarketRegistry, PriceObservation, day_start
from schemas.settings import Settings
from schemas.spatial import Gazetteer
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.checkpoints import Checkpoints
from streams.metrics import LATE_EVENTS
from streams.partition import ItemPartition
from streams.pipeline import Emitted, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.validation import future_problem
from streams.windows import ArrivalClock

PRICE_ABOVE_HET, PRICE_SPIKE, MARKET_SILENT = "price_above_het", "price_spike", "market_silent"


@dataclass
class Obs:
    price: float
    observed_at: float
    grade: str
    unit: str
    source: str


@dataclass
class Pending:
    """An observation whose alarms are not yet judged."""

    key: str
    day: str
    obs: Obs


@dataclass
class PricesState:
    offset: int = -1
    # "market/commodity" → ISO day → the day's winning observation
    series: dict[str, dict[str, Obs]] = field(default_factory=dict)
    # As judged (alarms), in event time: city → days any market reported; market → its
    # newest day; series → the newest day's winner judged so far (day, then its rank).
    city_days: dict[str, list[str]] = field(default_factory=dict)
    last_day: dict[str, str] = field(default_factory=dict)
    judged: dict[str, tuple[str, float, float, str, str, str]] = field(default_factory=dict)
    pending: dict[str, list[Pending]] = field(default_factory=dict)  # city → to judge
    clocks: dict[str, ArrivalClock] = field(default_factory=dict)  # city → its clock
    version_ms: int = 0  # rows' updated_at: when they were computed (shown, not compared)
    alarms: EngineState = field(default_factory=EngineState)


def _pct(value: float, base: float | None) -> float | None:
    return None if not base else round((value / base - 1.0) * 100.0, 3)


def _rank(obs: Obs) -> tuple[float, float, str, str, str]:
    return (obs.observed_at, obs.price, obs.source, obs.grade, obs.unit)


def _days_after(day: str, n: int) -> list[str]:
    d = date.fromisoformat(day)
    return [(d + timedelta(days=k)).isoformat() for k in range(n + 1)]


class PricesPartition(ItemPartition[PriceObservation]):
    model = PriceObservation

    def __init__(self, settings: Settings, book: RuleBook, markets: MarketRegistry,
                 commodities: CommodityRegistry, gazetteer: Gazetteer, saved: bytes | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.lateness = settings.window_allowed_lateness_s
        self.cfg = book.prices
        self.markets = markets.by_id()
        self.commodities = commodities.by_id()
        self.kecamatan = {
            mid: (gazetteer.kecamatan.at(m.lon, m.lat) or "") for mid, m in self.markets.items()
        }
        self.city_markets: dict[str, list[str]] = {}
        for mid, m in self.markets.items():
            self.city_markets.setdefault(m.city, []).append(mid)
        self.state = msgspec.json.decode(saved, type=PricesState) if saved else PricesState()
        self.alarms = AlarmEngine(book, self.state.alarms)
        self._touched: set[tuple[str, str, str]] = set()  # (market, commodity, day)

    def order(self, items: list[PriceObservation]) -> list[PriceObservation]:
        return sorted(items, key=lambda o: (o.date, o.observed_at))

    def apply(self, ob: PriceObservation, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        market = self.markets.get(ob.market_id)
        if market is None:
            return Reason.UNKNOWN_ENTITY, f"unknown market {ob.market_id!r}"
        commodity = self.commodities.get(ob.commodity_id)
        if commodity is None:
            return Reason.UNKNOWN_ENTITY, f"unknown commodity {ob.commodity_id!r}"
        if ob.unit != commodity.unit:
            return Reason.IMPOSSIBLE_VALUE, f"{commodity.id} is priced per {commodity.unit}, not per {ob.unit!r}"  # fmt: skip
        if ob.grade and commodity.grade and ob.grade.casefold() != commodity.grade:
            return Reason.IMPOSSIBLE_VALUE, f"{commodity.id} is grade {commodity.grade!r}, not {ob.grade!r}"  # fmt: skip
        if ob.price_idr > self.cfg.max_price_idr:
            return Reason.IMPOSSIBLE_VALUE, f"price {ob.price_idr} above {self.cfg.max_price_idr} per unit"  # fmt: skip
        future = future_problem(ob.observed_at, now, self.settings.max_future_s) or future_problem(
            day_start(ob.date), now, self.settings.max_future_s
        )
        if future:
            return future
        day, key = ob.date.isoformat(), f"{ob.market_id}/{ob.commodity_id}"
        grade = ob.grade or commodity.grade
        out.add(ddl.PRICE_OBSERVATIONS, ddl.PRICE_OBSERVATION_COLUMNS,
                [(ob.market_id, ob.commodity_id, ob.date, ob.observed_at, ob.price_idr, grade, ob.unit, ob.source)])  # fmt: skip
        series = self.state.series.setdefault(key, {})
        if series and day < self._horizon(max(series)):
            # Older than the kept history: stored as an observation, not re-aggregated.
            LATE_EVENTS.labels(PRICE_OBSERVATIONS.name).inc()
            return None
        new = Obs(ob.price_idr, ob.observed_at.timestamp(), grade, ob.unit, ob.source)
        current = series.get(day)
        if current is not None and _rank(current) == _rank(new):
            return None  # a redelivery changes nothing
        # The later observation wins the day; the same instant twice is settled by content,
        # so the winner never depends on which arrived first.
        if current is None or _rank(new) > _rank(current):
            series[day] = new
            self._touched.add((ob.market_id, ob.commodity_id, day))
        # Alarms see every observation, also one a later one has already beaten (it was the
        # day's price for a while), in event time once settled: neither arrival order nor
        # how a feed is cut into messages changes them.
        wall = now.timestamp()
        self.state.clocks.setdefault(market.city, ArrivalClock()).arrive(new.observed_at, wall)
        pending = self.state.pending.setdefault(market.city, [])
        item = Pending(key, day, new)
        if item not in pending:
            bisect.insort(pending, item, key=lambda p: (_rank(p.obs), p.key))
        self._judge(market.city, now, out)
        return None

    def _judge(self, city: str, now: datetime, out: Emitted) -> bool:
        """Judge the city's observations its clock, less the lateness, has passed."""
        pending = self.state.pending.get(city)
        if not pending:
            return False
        c = self.state.clocks[city]
        settled = c.settled(now.timestamp(), self.lateness)
        n = 0
        while n < len(pending) and pending[n].obs.observed_at < settled:
            self._judge_one(city, pending[n], out)
            n += 1
        del pending[:n]
        return n > 0

    def _judge_one(self, city: str, p: Pending, out: Emitted) -> None:
        market_id = p.key.split("/", 1)[0]
        best = self.state.judged.get(p.key)
        rank = (p.day, *_rank(p.obs))
        if best is None or rank > tuple(best):
            # The winner of the newest day so far, as of this observation.
            self.state.judged[p.key] = rank
            self._price_alarms(p.key, p.day, p.obs.price, out)
        if p.day > self.state.last_day.get(market_id, ""):
            self.state.last_day[market_id] = p.day
        days = self.state.city_days.setdefault(city, [])
        i = bisect.bisect_left(days, p.day)
        if i == len(days) or days[i] != p.day:
            days.insert(i, p.day)
            del days[: max(0, len(days) - self.cfg.history_days)]
        self._silence(city, out)

    def tick(self, now: datetime, out: Emitted) -> bool:
        changed = False
        for city in list(self.state.pending):
            changed |= self._judge(city, now, out)
        return changed

    def _horizon(self, newest: str) -> str:
        return (date.fromisoformat(newest) - timedelta(days=self.cfg.history_days)).isoformat()

    # -- statistics -------------------------------------------------------------------

    def _window(self, day: str) -> tuple[str, str]:
        d = date.fromisoformat(day)
        return (d - timedelta(days=self.cfg.median_days)).isoformat(), day

    def _median_of(self, values: list[float]) -> float | None:
        return statistics.median(values) if len(values) >= self.cfg.min_median_days else None

    def market_stats(self, key: str, day: str) -> tuple[float | None, float | None]:
        """(previous market day's price, median of the previous days' prices) of a series."""
        lo, hi = self._window(day)
        series = self.state.series.get(key, {})
        earlier = sorted(d for d in series if lo <= d < hi)
        prev = series[earlier[-1]].price if earlier else None
        return prev, self._median_of([series[d].price for d in earlier])

    def city_prices(self, city: str, commodity: str, day: str) -> list[float]:
        out = []
        for mid in self.city_markets.get(city, []):
            obs = self.state.series.get(f"{mid}/{commodity}", {}).get(day)
            if obs is not None:
                out.append(obs.price)
        return out

    def city_stats(self, city: str, commodity: str, day: str) -> tuple[float | None, float | None]:
        """(previous day's city median, median of the previous days' city medians)."""
        lo, hi = self._window(day)
        medians = []
        for d in _days_after(lo, self.cfg.median_days - 1):
            if d < hi and (prices := self.city_prices(city, commodity, d)):
                medians.append(statistics.median(prices))
        return (medians[-1] if medians else None), self._median_of(medians)

    # -- rows and alarms ----------------------------------------------------------------

    def _version(self, now: datetime) -> datetime:
        self.state.version_ms = max(int(now.timestamp() * 1000), self.state.version_ms + 1)
        return datetime.fromtimestamp(self.state.version_ms / 1000, UTC)

    def _inputs_version(self, keys: list[str], day: str) -> int:
        """A row's ReplacingMergeTree version: the sum of the observation times (ms) of
        the daily prices it is computed from. A day's price is only ever replaced by a
        later observation and days are only added, so the sum grows with every change of
        the inputs and the most complete row wins, whatever order, batches, restarts or
        workers (with their clocks) computed it in."""
        lo, _ = self._window(day)
        total = 0
        for key in keys:
            series = self.state.series.get(key, {})
            total += sum(round(series[d].observed_at * 1000) for d in series if lo <= d <= day)
        return total

    def _market_row(self, key: str, day: str, updated: datetime) -> tuple[Any, ...]:
        market_id, commodity_id = key.split("/", 1)
        obs = self.state.series[key][day]
        prev, median = self.market_stats(key, day)
        return (market_id, commodity_id, date.fromisoformat(day), self.markets[market_id].city,
                self.kecamatan[market_id], obs.grade, obs.unit, obs.price,
                datetime.fromtimestamp(obs.observed_at, UTC), obs.source, prev, _pct(obs.price, prev),
                median, _pct(obs.price, median), updated, self._inputs_version([key], day))  # fmt: skip

    def _city_row(self, city: str, commodity: str, day: str, updated: datetime) -> tuple[Any, ...] | None:  # fmt: skip
        prices = self.city_prices(city, commodity, day)
        if not prices:
            return None
        median = statistics.median(prices)
        prev, median_7d = self.city_stats(city, commodity, day)
        keys = [f"{mid}/{commodity}" for mid in self.city_markets.get(city, [])]
        return (city, commodity, date.fromisoformat(day), median, min(prices), max(prices), len(prices),
                prev, _pct(median, prev), median_7d, _pct(median, median_7d), updated,
                self._inputs_version(keys, day))  # fmt: skip

    def _context(self, market_id: str, commodity_id: str, day: str) -> Context:
        m, c = self.markets[market_id], self.commodities.get(commodity_id)
        return {"market": m.name, "city": m.city, "kecamatan": self.kecamatan[market_id],
                "commodity": c.name if c else commodity_id, "day": day}  # fmt: skip

    def _price_alarms(self, key: str, day: str, price: float, out: Emitted) -> None:
        market_id, commodity_id = key.split("/", 1)
        ts = day_start(date.fromisoformat(day)).timestamp()
        context = {**self._context(market_id, commodity_id, day), "price_idr": price}
        ceiling = self.cfg.ceilings.get(commodity_id)
        if ceiling is not None:
            ctx = {**context, "ceiling_idr": ceiling.price_idr, "ceiling_kind": ceiling.kind,
                   "reference": ceiling.reference}  # fmt: skip
            above = (price / ceiling.price_idr - 1.0) * 100.0
            out.alarms.extend(self.alarms.observe(PRICE_ABOVE_HET, key, ts, above, ctx))
        prev, _ = self.market_stats(key, day)
        if prev:
            change = (price / prev - 1.0) * 100.0
            ctx = {**context, "prev_price_idr": prev}
            out.alarms.extend(self.alarms.observe(PRICE_SPIKE, key, ts, change, ctx))

    def _silence(self, city: str, out: Emitted) -> None:
        """Market days (days other markets of the city reported) since each market's last."""
        days = self.state.city_days.get(city, [])
        if not days:
            return
        ts = day_start(date.fromisoformat(days[-1])).timestamp()
        for mid in self.city_markets.get(city, []):
            last = self.state.last_day.get(mid)
            if last is None:
                continue  # never reported: not a market that stopped
            silent = len(days) - bisect.bisect_right(days, last)
            context = {**self._context(mid, "", last), "last_day": last}
            context.pop("commodity")
            out.alarms.extend(self.alarms.observe(MARKET_SILENT, mid, ts, float(silent), context))

    def after(self, applied: list[PriceObservation], now: datetime, out: Emitted) -> None:
        if not self._touched:
            return
        updated = self._version(now)
        market_rows: set[tuple[str, str]] = set()
        city_rows: set[tuple[str, str, str]] = set()
        for market_id, commodity_id, day in self._touched:
            key, city = f"{market_id}/{commodity_id}", self.markets[market_id].city
            # A price feeds the next days' changes too: recompute them (a late or corrected day).
            for d in _days_after(day, self.cfg.median_days):
                if d in self.state.series[key]:
                    market_rows.add((key, d))
                city_rows.add((city, commodity_id, d))
        out.add(ddl.PRICES_DAILY, ddl.PRICE_DAILY_COLUMNS,
                [self._market_row(k, d, updated) for k, d in sorted(market_rows)])  # fmt: skip
        rows = [self._city_row(c, k, d, updated) for c, k, d in sorted(city_rows)]
        out.add(ddl.PRICES_CITY, ddl.PRICE_CITY_COLUMNS, [r for r in rows if r is not None])
        for key in sorted({f"{m}/{c}" for m, c, _ in self._touched}):
            series = self.state.series[key]
            horizon = self._horizon(max(series))
            for d in [d for d in series if d < horizon]:
                del series[d]
        self._touched.clear()


def prices_pipeline(
    settings: Settings, book: RuleBook, markets: MarketRegistry, commodities: CommodityRegistry,
    gazetteer: Gazetteer, sink: BaseSink, checkpoints: Checkpoints, producer: Producer,
    highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:  # fmt: skip
    def factory(key: StateKey, saved: bytes | None) -> PricesPartition:
        return PricesPartition(settings, book, markets, commodities, gazetteer, saved)

    return Pipeline(
        "prices", settings, sink, checkpoints, producer, factory, highwater=highwater, clock=clock
    )
