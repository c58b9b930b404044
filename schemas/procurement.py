"""E-procurement (pengadaan): tender lifecycle events from SPSE listings and OCDS releases.

A tender moves through ``announced`` (owner's estimate: HPS or pagu, method, tender
period), ``bid`` (one per bidder), ``awarded`` (winner and amount) and ``contract``. Events
are keyed by agency so one processor sees every tender of an agency (the repeated-winner
red flag needs that).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class TenderSource(StrEnum):
    SPSE = "spse"  # Indonesia's Sistem Pengadaan Secara Elektronik (LPSE portals)
    OCDS = "ocds"  # Open Contracting Data Standard releases


class TenderKind(StrEnum):
    ANNOUNCED = "announced"
    BID = "bid"
    AWARDED = "awarded"
    CONTRACT = "contract"


STAGE_RANK = {TenderKind.ANNOUNCED: 1, TenderKind.BID: 2, TenderKind.AWARDED: 3,
              TenderKind.CONTRACT: 4}  # fmt: skip

_Currency = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217")


class TenderEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(
        min_length=1, max_length=256, description="stable id: a replayed event replaces itself"
    )
    source: TenderSource
    tender_id: str = Field(min_length=1, max_length=128, description="unique within the source")
    kind: TenderKind
    ts: AwareDatetime = Field(description="when it happened (SPSE listings: when it was listed)")
    agency_id: str = Field(min_length=1, max_length=128)
    agency_name: str = Field("", max_length=512)
    title: str | None = Field(None, max_length=2000)
    method: str | None = Field(None, max_length=128, description="as the source names it")
    category: str | None = Field(None, max_length=128)
    year: int | None = Field(None, ge=1990, le=2100)
    status: str | None = Field(None, max_length=128)
    estimate_amount: float | None = Field(None, ge=0, description="owner's estimate (HPS/pagu)")
    estimate_currency: str | None = _Currency
    tender_start: AwareDatetime | None = None
    tender_end: AwareDatetime | None = None
    bidders: int | None = Field(None, ge=0, le=100_000, description="number of bidders reported")
    bidder_id: str | None = Field(None, max_length=128, description="bid events")
    bidder_name: str | None = Field(None, max_length=512)
    winner_id: str | None = Field(None, max_length=128, description="awarded/contract events")
    winner_name: str | None = Field(None, max_length=512)
    amount: float | None = Field(None, ge=0, description="bid, award or contract value")
    currency: str | None = _Currency
    exchange_rate: float | None = Field(
        None,
        gt=0,
        description="estimate-currency units per unit of `currency`, as the source gives it",
    )
    connector: str = Field("unknown", max_length=64)

    @field_validator("ts", "tender_start", "tender_end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> TenderEvent:
        if self.tender_start and self.tender_end and self.tender_end < self.tender_start:
            raise ValueError("tender_end is before tender_start")
        if (self.estimate_amount is None) != (self.estimate_currency is None):
            raise ValueError("estimate_amount and estimate_currency go together")
        if self.amount is not None and self.currency is None:
            raise ValueError("amount needs a currency")
        if self.kind is TenderKind.BID and not self.bidder_id:
            raise ValueError("a bid needs bidder_id")
        if self.kind is TenderKind.AWARDED and not self.winner_id:
            raise ValueError("an award needs winner_id")
        return self

    @property
    def key(self) -> str:
        """The tender's identity across sources."""
        return f"{self.source.value}:{self.tender_id}"


# SPSE abbreviates amounts: "3,8 Jt" (juta), "1,2 M" (miliar), "2 T" (triliun), "500 Rb" (ribu).
_SCALE = {"": 1, "rb": 10**3, "ribu": 10**3, "jt": 10**6, "juta": 10**6, "m": 10**9,
          "miliar": 10**9, "milyar": 10**9, "t": 10**12, "triliun": 10**12}  # fmt: skip
_AMOUNT = re.compile(r"^(?:rp\.?\s*)?([0-9][0-9.,]*)\s*([a-z]*)\.?$")


def parse_idr(text: str) -> float:
    """An SPSE amount in rupiah: Indonesian decimal comma, "." groups thousands.

    ``"3,8 Jt"`` → 3_800_000; ``"Rp. 3.800.000,00"`` → 3_800_000; raises ValueError otherwise.
    """
    raw = text.strip().lower()
    m = _AMOUNT.match(raw)
    if not m or m.group(2) not in _SCALE:
        raise ValueError(f"not an SPSE amount: {text!r}")
    digits, scale = m.group(1), _SCALE[m.group(2)]
    if "," in digits:
        whole, _, frac = digits.rpartition(",")
        if "," in whole or not frac:
            raise ValueError(f"not an SPSE amount: {text!r}")
    else:
        whole, frac = digits, ""
    # "." only groups thousands: every group after the first has exactly three digits.
    groups = whole.split(".")
    if not groups[0] or any(len(g) != 3 for g in groups[1:]):
        raise ValueError(f"not an SPSE amount: {text!r}")
    try:
        value = Decimal("".join(groups) + ("." + frac if frac else "")) * scale
    except InvalidOperation as exc:
        raise ValueError(f"not an SPSE amount: {text!r}") from exc
    return float(value)


def slug(text: str) -> str:
    """A stable id (at most 128 characters) from a name (SPSE listings, and some OCDS
    publishers, carry names only): "SECRETARÍA DE FINANZAS" → ``secretaria-de-finanzas``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:128].rstrip("-")


# What each field of a TenderEvent is called in a dead letter's detail.
FIELD_NAMES = {
    "event_id": "an award, contract or tenderer id",
    "tender_id": "the package id (ocid)",
    "ts": "the date",
    "agency_id": "the buyer's identifier",
    "agency_name": "the buyer's name",
    "title": "the title",
    "method": "the procurement method",
    "category": "the category",
    "year": "the budget year",
    "status": "the status",
    "estimate_amount": "the estimate (HPS / tender value)",
    "estimate_currency": "the estimate's currency",
    "tender_start": "the tender period's start",
    "tender_end": "the tender period's end",
    "bidders": "the number of tenderers",
    "bidder_id": "a tenderer's identifier",
    "bidder_name": "a tenderer's name",
    "winner_id": "a supplier's identifier",
    "winner_name": "a supplier's name",
    "amount": "an award or contract value",
    "currency": "an award or contract currency",
    "exchange_rate": "an exchange rate",
}


def refusal(exc: ValidationError) -> str:
    """Why a tender event was refused, as a sentence: the field in words and what is wrong
    with it, never the value (nor pydantic's own wording of the error)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:3]:
        field = str(err["loc"][0]) if err["loc"] else ""
        msg = err["msg"].removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]
        parts.append(f"{FIELD_NAMES[field]} is not usable: {msg}" if field in FIELD_NAMES else msg)
    return "; ".join(parts)


def method_key(method: str | None) -> str:
    """Methods are matched case- and spacing-insensitively ("Pengadaan  Langsung")."""
    return " ".join((method or "").lower().split())


class ProcurementConfig(BaseModel):
    """The ``[procurement]`` section of the rule book: when a tender is a red flag."""

    model_config = ConfigDict(extra="forbid")

    near_hps_ratio: float = Field(
        0.99, gt=0, description="award / owner's estimate at or above this is flagged"
    )
    single_bidder_max: int = Field(1, ge=1, description="this many bidders or fewer is flagged")
    # Single-bidder and near-estimate flags only mean something where competition was meant.
    competitive_methods: list[str] = Field(
        default_factory=lambda: ["tender", "seleksi", "tender cepat", "open", "selective"]
    )
    # Shortest allowed tender period (days) per method; methods not listed are not checked.
    min_tender_days: dict[str, float] = Field(default_factory=dict)
    repeated_winner_awards: int = Field(3, ge=2, description="wins by one supplier at one agency")
    repeated_winner_window_days: float = Field(180.0, gt=0, description="… within this window")
    state_retention_days: float = Field(
        400.0, gt=0, description="a tender untouched this long (wall clock) leaves worker state"
    )

    def competitive(self, method: str | None) -> bool:
        return method_key(method) in {method_key(m) for m in self.competitive_methods}

    def min_days(self, method: str | None) -> float | None:
        table = {method_key(k): v for k, v in self.min_tender_days.items()}
        return table.get(method_key(method))
