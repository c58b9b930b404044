"""Staple-food prices: markets, commodities (with their HET/HAP), daily prices per market,
and the city median with its change against the previous days' median."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from api.deps import UtcDatetime, WarehouseDep, run_query
from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import load_rules
from schemas.prices import load_commodities, load_markets
from schemas.spatial import gazetteer

router = APIRouter(prefix="/v1/prices", tags=["prices"])

Slug = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9-]+$")]


class MarketOut(BaseModel):
    id: str
    name: str
    city: str
    kind: str
    lat: float
    lon: float
    kecamatan: str | None
    last_day: date | None


class CommodityOut(BaseModel):
    id: str
    name: str
    unit: str
    grade: str
    aliases: list[str]
    ceiling_idr: float | None
    ceiling_kind: str | None
    ceiling_reference: str | None


class DailyOut(BaseModel):
    market_id: str
    commodity_id: str
    day: date
    city: str
    kecamatan: str
    grade: str
    unit: str
    price_idr: float
    observed_at: UtcDatetime
    source: str
    prev_price_idr: float | None
    change_dod_pct: float | None
    median_7d_idr: float | None
    change_7d_pct: float | None


class CityOut(BaseModel):
    city: str
    commodity_id: str
    day: date
    median_idr: float
    min_idr: float
    max_idr: float
    markets: int
    prev_median_idr: float | None
    change_dod_pct: float | None
    median_7d_idr: float | None
    change_7d_pct: float | None
    ceiling_idr: float | None
    above_ceiling: bool | None


def _known_commodity(commodity: str | None) -> None:
    if commodity is not None and commodity not in load_commodities().by_id():
        raise HTTPException(404, f"unknown commodity {commodity!r}; see /v1/prices/commodities")


def _ceilings(request: Request) -> dict[str, Any]:
    return dict(load_rules(request.app.state.settings.alarm_rules).prices.ceilings)


@router.get("/markets", response_model=list[MarketOut])
async def markets(warehouse: WarehouseDep) -> list[MarketOut]:
    last = {r["market_id"]: r["last_day"] for r in await run_query(
        warehouse, f"SELECT market_id, max(day) AS last_day FROM {ddl.PRICES_DAILY} GROUP BY market_id")}  # fmt: skip
    g = gazetteer()
    return [MarketOut(**m.model_dump(), kecamatan=g.kecamatan.at(m.lon, m.lat), last_day=last.get(m.id))
            for m in load_markets().markets]  # fmt: skip


@router.get("/commodities", response_model=list[CommodityOut])
async def commodities(request: Request) -> list[CommodityOut]:
    ceilings = _ceilings(request)
    out = []
    for c in load_commodities().commodities:
        ceiling = ceilings.get(c.id)
        out.append(CommodityOut(
            id=c.id, name=c.name, unit=c.unit, grade=c.grade, aliases=c.aliases,
            ceiling_idr=ceiling.price_idr if ceiling else None,
            ceiling_kind=ceiling.kind if ceiling else None,
            ceiling_reference=ceiling.reference if ceiling else None,
        ))  # fmt: skip
    return out


@router.get(
    "/daily", response_model=list[DailyOut], summary="Daily prices per market, newest first"
)
async def daily(
    warehouse: WarehouseDep,
    commodity: Slug = None,
    market: Slug = None,
    days: Annotated[int, Query(ge=1, le=366, description="the last N days of data")] = 7,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[DailyOut]:
    _known_commodity(commodity)
    conds, params = ["1"], {"days": days, "limit": limit}
    for name, value in (("commodity_id", commodity), ("market_id", market)):
        if value:
            conds.append(f"{name} = {{{name}:String}}")
            params[name] = value  # type: ignore[assignment]
    where = " AND ".join(conds)
    rows = await run_query(
        warehouse,
        f"SELECT {', '.join(ddl.PRICE_DAILY_COLUMNS[:-1])} FROM {ddl.PRICES_DAILY} FINAL WHERE {where}"
        f" AND day > (SELECT max(day) FROM {ddl.PRICES_DAILY} WHERE {where}) - {{days:UInt32}}"
        " ORDER BY day DESC, commodity_id, market_id LIMIT {limit:UInt32}",
        params,
    )
    return [DailyOut(**r) for r in rows]


@router.get(
    "/city", response_model=list[CityOut], summary="City median per commodity and day, with change"
)
async def city(
    request: Request,
    warehouse: WarehouseDep,
    commodity: Slug = None,
    city: Annotated[str, Query(max_length=64, pattern=r"^[a-z0-9-]+$")] = "kota-semarang",
    days: Annotated[int, Query(ge=1, le=366, description="the last N days of data")] = 1,
) -> list[CityOut]:
    _known_commodity(commodity)
    conds, params = ["city = {city:String}"], {"city": city, "days": days}
    if commodity:
        conds.append("commodity_id = {commodity:String}")
        params["commodity"] = commodity
    where = " AND ".join(conds)
    rows = await run_query(
        warehouse,
        f"SELECT {', '.join(ddl.PRICE_CITY_COLUMNS[:-1])} FROM {ddl.PRICES_CITY} FINAL WHERE {where}"
        f" AND day > (SELECT max(day) FROM {ddl.PRICES_CITY} WHERE {where}) - {{days:UInt32}}"
        " ORDER BY commodity_id, day DESC",
        params,
    )
    ceilings = _ceilings(request)
    out = []
    for r in rows:
        ceiling = ceilings.get(r["commodity_id"])
        limit = ceiling.price_idr if ceiling else None
        above = None if limit is None else r["median_idr"] > limit
        out.append(CityOut(**r, ceiling_idr=limit, above_ceiling=above))
    return out
