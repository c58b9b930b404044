"""A deterministic simulator of staple-food prices at Semarang's markets.

At its first tick it backfills the previous ``backfill_days`` market days, so medians,
changes and alarms exist at once; then it publishes the current day's prices every
interval (the same price all day: a market reports one price per commodity per day).
Scripted so every price alarm fires: bird's-eye chilli at Pasar Johar jumps 60 % on the
first simulated day, premium rice at Pasar Jatingaleh sells above its HET, and Pasar
Gayamsari stops reporting three days before the start. See :attr:`PriceSimulator.truth`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel

from connectors.base import TickSource
from schemas.catalog import PRICE_OBSERVATIONS
from schemas.prices import WIB, CommodityRegistry, MarketRegistry, PriceObservation, wib_day

# Typical Semarang retail prices (Rp per unit) and how much they swing: (typical, seasonal
# amplitude, daily noise). Kept below the ceilings so only the scripted market breaks one.
PROFILE: dict[str, tuple[float, float, float]] = {
    "beras-premium": (14000, 0.01, 0.004),
    "beras-medium": (12700, 0.01, 0.004),
    "bawang-merah": (34000, 0.06, 0.02),
    "bawang-putih": (33000, 0.05, 0.015),
    "cabai-merah-keriting": (40000, 0.12, 0.03),
    "cabai-merah-besar": (45000, 0.12, 0.03),
    "cabai-rawit-merah": (40000, 0.12, 0.03),
    "daging-sapi": (128000, 0.01, 0.004),
    "daging-ayam": (35000, 0.03, 0.01),
    "telur-ayam": (27000, 0.03, 0.01),
    "gula": (16800, 0.01, 0.004),
    "minyak-goreng-kemasan": (19500, 0.01, 0.004),
    "minyak-goreng-curah": (17500, 0.01, 0.004),
    "minyakita": (14800, 0.01, 0.004),
}


@dataclass(frozen=True)
class Script:
    kind: str  # the alarm it should raise
    market_id: str
    commodity_id: str | None
    from_day: date
    factor: float = 1.0


class PriceSimulator(TickSource):
    name = "price-simulator"
    topic = PRICE_OBSERVATIONS

    def __init__(self, markets: MarketRegistry, commodities: CommodityRegistry, seed: int = 7,
                 interval_s: float = 600.0, backfill_days: int = 14, start: float | None = None,
                 duration_s: float | None = None, realtime: bool = True) -> None:  # fmt: skip
        self.seed = seed
        self._clock(interval_s, start, duration_s, realtime)
        self.markets = [m for m in markets.markets if m.city == "kota-semarang"]
        known = commodities.by_id()
        self.commodities = [known[c] for c in PROFILE if c in known]
        self.backfill_days = backfill_days
        self.start_day = wib_day(datetime.fromtimestamp(self.start, UTC))
        self._backfilled = False
        self.truth = [
            Script("price_spike", "pasar-johar", "cabai-rawit-merah", self.start_day, 1.6),
            Script("price_above_het", "pasar-jatingaleh", "beras-premium", self.start_day - timedelta(days=backfill_days), 1.1),
            Script("market_silent", "pasar-gayamsari", None, self.start_day - timedelta(days=3)),
        ]  # fmt: skip

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, PriceObservation)
        return event.commodity_id

    def price(self, market_id: str, commodity_id: str, day: date) -> float:
        """The day's price: seasonal city level, times the market's own offset, times daily noise."""
        typical, amplitude, noise = PROFILE[commodity_id]
        phase = random.Random(f"{self.seed}/{commodity_id}").uniform(0, 30)
        season = 1 + amplitude * math.sin(2 * math.pi * (day.toordinal() + phase) / 30)
        offset = random.Random(f"{self.seed}/{market_id}/{commodity_id}").uniform(-0.02, 0.02)
        daily = random.Random(f"{self.seed}/{market_id}/{commodity_id}/{day}").gauss(0, noise)
        factor = 1.0
        for s in self.truth:
            if (s.market_id, s.commodity_id) == (market_id, commodity_id) and day >= s.from_day:
                factor *= s.factor
        value = typical * season * (1 + offset) * (1 + max(-2 * noise, min(2 * noise, daily)))
        return float(round(value * factor / 50) * 50)

    def reports(self, market_id: str, day: date) -> bool:
        return not any(
            s.kind == "market_silent" and s.market_id == market_id and day >= s.from_day
            for s in self.truth
        )

    def day_prices(self, day: date, observed_at: datetime) -> list[PriceObservation]:
        return [
            PriceObservation(
                market_id=m.id,
                commodity_id=c.id,
                grade=c.grade,
                unit=c.unit,
                price_idr=self.price(m.id, c.id, day),
                date=day,
                source=self.name,
                observed_at=observed_at,
            )
            for m in self.markets
            if self.reports(m.id, day)
            for c in self.commodities
        ]

    def events_at(self, t: float) -> list[PriceObservation]:
        out: list[PriceObservation] = []
        if not self._backfilled:
            self._backfilled = True
            for back in range(self.backfill_days, 0, -1):
                day = self.start_day - timedelta(days=back)
                out += self.day_prices(day, datetime.combine(day, time(10, 0), WIB))
        now = datetime.fromtimestamp(t, UTC)
        return out + self.day_prices(wib_day(now), now)
