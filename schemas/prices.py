"""Staple-food prices (harga pangan): price observations per market, commodity and day,
and the registries of markets and commodities they refer to."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

MARKETS_FILE = Path(__file__).with_name("markets.toml")
COMMODITIES_FILE = Path(__file__).with_name("commodities.toml")
# Market days are local days; Semarang (and Bapanas' daily tables) keep Western Indonesia time.
WIB = timezone(timedelta(hours=7), "WIB")


class PriceObservation(BaseModel):
    """One price seen for one commodity at one market on one market day."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    market_id: str = Field(min_length=1, max_length=64)
    commodity_id: str = Field(min_length=1, max_length=64)
    grade: str = Field("", max_length=32, description="quality grade, when the commodity has one")
    unit: str = Field(min_length=1, max_length=16, description="kg or liter (Rp per unit)")
    price_idr: float = Field(gt=0, description="rupiah per unit; a missing price is no event")
    date: dt.date = Field(description="the market day, WIB")
    source: str = Field("unknown", max_length=64)
    observed_at: AwareDatetime

    @field_validator("observed_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        return normalize_unit(value)


def normalize_unit(raw: str) -> str:
    """'Rp./Kg', 'Rp/kg', 'kg' → 'kg'; 'Rp./Liter' → 'liter'. Unknown units pass through."""
    text = re.sub(r"^\s*rp\.?\s*/?\s*", "", raw.strip().lower())
    text = text.strip(" ./")
    return {"lt": "liter", "l": "liter", "litre": "liter", "ltr": "liter"}.get(text, text)


def day_start(day: date) -> datetime:
    """Midnight WIB of a market day, in UTC: the event-clock time of that day."""
    return datetime.combine(day, time(0), WIB).astimezone(UTC)


def wib_day(ts: datetime) -> date:
    return ts.astimezone(WIB).date()


def name_key(name: str) -> str:
    """How a published name is compared: any case, any spacing ("Cabai Merah Keriting "
    with PIHPS' trailing space is "cabai merah keriting")."""
    return " ".join(name.casefold().split())


class Market(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    city: str = Field(description="city id; medians and silence are per city")
    kind: str = Field("pasar", description="pasar (a market) or city-average (a published series)")
    lat: float
    lon: float


class MarketRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = ""
    markets: list[Market] = Field(alias="market")

    def by_id(self) -> dict[str, Market]:
        return {m.id: m for m in self.markets}


class Commodity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    unit: str
    grade: str = ""
    bapanas_id: int | None = None
    pihps_group: str = Field(
        "", description="the PIHPS group (e.g. Beras) whose row averages this grade"
    )
    aliases: list[str] = Field(default_factory=list, description="PIHPS and Bapanas names")

    def names(self) -> list[str]:
        return [self.id, self.name, *self.aliases]


class CommodityRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = ""
    commodities: list[Commodity] = Field(alias="commodity")
    _index: dict[str, Commodity] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _one_commodity_per_name(self) -> CommodityRegistry:
        # A name standing for two commodities would collapse two series into one.
        index: dict[str, Commodity] = {}
        for c in self.commodities:
            for name in c.names():
                other = index.setdefault(name_key(name), c)
                if other.id != c.id:
                    raise ValueError(f"the name {name!r} stands for both {other.id} and {c.id}")
        self._index = index
        return self

    def by_id(self) -> dict[str, Commodity]:
        return {c.id: c for c in self.commodities}

    def resolve(self, name: str) -> Commodity | None:
        """The commodity a published name (any alias, any case or spacing) stands for."""
        return self._index.get(name_key(name))

    def groups(self) -> set[str]:
        """PIHPS group names (as :func:`name_key`), whose rows average their grades."""
        return {name_key(c.pihps_group) for c in self.commodities if c.pihps_group}


@lru_cache(maxsize=4)
def load_markets(path: Path = MARKETS_FILE) -> MarketRegistry:
    return MarketRegistry.model_validate(tomllib.loads(path.read_text()))


@lru_cache(maxsize=4)
def load_commodities(path: Path = COMMODITIES_FILE) -> CommodityRegistry:
    return CommodityRegistry.model_validate(tomllib.loads(path.read_text()))


class Ceiling(BaseModel):
    """A government price ceiling (HET) or consumer reference price (HAP) for a commodity."""

    model_config = ConfigDict(extra="forbid")

    price_idr: float = Field(gt=0)
    kind: str = Field(pattern="^(HET|HAP)$")
    reference: str = Field("", description="the regulation the value follows")


class PricesConfig(BaseModel):
    """The ``[prices]`` section of the rule book; alarm thresholds are its [[rule]]s."""

    model_config = ConfigDict(extra="forbid")

    median_days: int = Field(
        7, ge=1, description="change is measured against the median of this many previous days"
    )
    min_median_days: int = Field(
        3, ge=1, description="fewer days with a price than this: no median"
    )
    history_days: int = Field(35, ge=8, description="days of prices kept per market and commodity")
    max_price_idr: float = Field(5_000_000, gt=0, description="dearer than this per unit is a typo")
    ceilings: dict[str, Ceiling] = Field(default_factory=dict, description="per commodity id")
