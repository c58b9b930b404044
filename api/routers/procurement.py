"""E-procurement: tenders with their red flags, statistics per agency or method, findings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import UtcDatetime, WarehouseDep, run_query
from schemas import clickhouse_ddl as ddl

router = APIRouter(prefix="/v1/procurement", tags=["procurement"])
FlagKind = Literal["tender_single_bidder", "award_near_hps", "tender_period_short", "repeated_winner"]  # fmt: skip


class TenderOut(BaseModel):
    tender_key: str
    source: str
    tender_id: str
    agency_id: str
    agency_name: str
    title: str | None
    method: str
    category: str
    year: int | None
    status: str
    stage: str
    estimate_amount: float | None
    estimate_currency: str
    tender_start: UtcDatetime | None
    tender_end: UtcDatetime | None
    tender_days: float | None
    bidders: int | None
    winner_id: str | None
    winner_name: str | None
    award_amount: float | None
    award_currency: str
    award_in_estimate_currency: float | None
    award_ratio: float | None
    contract_amount: float | None
    contract_currency: str
    flags: list[str]
    first_event_at: UtcDatetime
    last_event_at: UtcDatetime


class TenderPage(BaseModel):
    items: list[TenderOut]
    total: int


class StatOut(BaseModel):
    key: str
    name: str
    currency: str
    tenders: int
    total_estimate: float
    awarded: int
    total_awarded: float | None
    mean_bidders: float | None
    single_bidder_share: float | None
    flagged: int


class FlagOut(BaseModel):
    flag: str
    entity: str
    tender_key: str
    agency_id: str
    agency_name: str
    method: str
    winner_id: str | None
    winner_name: str | None
    ts: UtcDatetime
    value: float
    threshold: float
    detail: str


@router.get("/tenders", response_model=TenderPage, summary="Tenders, latest activity first")
async def tenders(
    warehouse: WarehouseDep,
    agency: Annotated[str | None, Query(max_length=128, description="agency id")] = None,
    method: Annotated[str | None, Query(max_length=128)] = None,
    flag: FlagKind | None = None,
    source: Literal["spse", "ocds"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TenderPage:
    conds, params = ["1"], {"limit": limit, "offset": offset}
    for column, value in (("agency_id", agency), ("method", method), ("source", source)):
        if value:
            conds.append(f"{column} = {{{column}:String}}")
            params[column] = value  # type: ignore[assignment]
    if flag:
        conds.append("has(flags, {flag:String})")
        params["flag"] = flag  # type: ignore[assignment]
    where = " AND ".join(conds)
    rows = await run_query(
        warehouse,
        f"SELECT {', '.join(ddl.TENDER_COLUMNS[:-1])} FROM {ddl.PROCUREMENT_TENDERS} FINAL"
        f" WHERE {where} ORDER BY last_event_at DESC, tender_key"
        " LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        params,
    )
    total = await run_query(
        warehouse, f"SELECT count() AS n FROM {ddl.PROCUREMENT_TENDERS} FINAL WHERE {where}", params
    )
    return TenderPage(items=[TenderOut(**r) for r in rows], total=int(total[0]["n"]))


@router.get(
    "/stats",
    response_model=list[StatOut],
    summary="Per agency or method: counts, totals (per estimate currency), bidders, flags",
)
async def stats(
    warehouse: WarehouseDep, by: Literal["agency", "method"] = "agency"
) -> list[StatOut]:
    # Amounts are only added within one currency, so a group is (agency or method, currency);
    # awards count in the estimate's currency (converted at the source's rate, else left out).
    key, name = ("agency_id", "agency_name") if by == "agency" else ("method", "method")
    rows = await run_query(
        warehouse,
        f"SELECT {key} AS key, any({name}) AS name, estimate_currency AS currency,"
        " count() AS tenders, sum(ifNull(estimate_amount, 0)) AS total_estimate,"
        " countIf(winner_id IS NOT NULL) AS awarded,"
        " sumIf(award_in_estimate_currency, award_in_estimate_currency IS NOT NULL) AS total_awarded,"
        " avgIf(bidders, bidders IS NOT NULL) AS mean_bidders,"
        " countIf(bidders = 1) / nullIf(countIf(bidders IS NOT NULL), 0) AS single_bidder_share,"
        " countIf(notEmpty(flags)) AS flagged"
        f" FROM {ddl.PROCUREMENT_TENDERS} FINAL GROUP BY key, currency"
        " ORDER BY tenders DESC, key, currency",
    )
    out = []
    for r in rows:
        mean = r["mean_bidders"]
        out.append(StatOut(**{**r, "mean_bidders": None if mean != mean else mean,
                              "total_awarded": r["total_awarded"] if r["awarded"] else None}))  # fmt: skip
    return out


@router.get("/flags", response_model=list[FlagOut], summary="Red-flag findings, newest first")
async def flags(
    warehouse: WarehouseDep,
    flag: FlagKind | None = None,
    agency: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[FlagOut]:
    conds, params = ["1"], {"limit": limit}
    for column, value in (("flag", flag), ("agency_id", agency)):
        if value:
            conds.append(f"{column} = {{{column}:String}}")
            params[column] = value  # type: ignore[assignment]
    rows = await run_query(
        warehouse,
        f"SELECT {', '.join(ddl.FLAG_COLUMNS)} FROM {ddl.PROCUREMENT_FLAGS} FINAL"
        f" WHERE {' AND '.join(conds)} ORDER BY ts DESC, flag, tender_key LIMIT {{limit:UInt32}}",
        params,
    )
    return [FlagOut(**r) for r in rows]


async def situation_counts(warehouse: Any) -> dict[str, int]:
    """Key counts for the situation overview."""
    rows = await run_query(
        warehouse,
        "SELECT count() AS tenders, countIf(notEmpty(flags)) AS flagged_tenders,"
        f" countIf(stage IN ('awarded', 'contract')) AS awarded FROM {ddl.PROCUREMENT_TENDERS} FINAL",
    )
    return {k: int(v or 0) for k, v in rows[0].items()} if rows else {}
