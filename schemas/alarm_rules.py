"""Alarm rules: thresholds, durations and level ladders, read from a TOML file.

The file is configuration, validated here; code never holds a threshold. The default
ships as ``schemas/alarm_rules.toml``; ``SITROOM_ALARM_RULES`` points at another.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.alarms import Severity
from schemas.prices import PricesConfig
from schemas.procurement import ProcurementConfig
from schemas.reports import ReportsConfig

DEFAULT_RULES = Path(__file__).with_name("alarm_rules.toml")

# Values the streams divide by or offset limits with: zero or negative is a broken book,
# caught at start rather than as a ZeroDivisionError on every tick.
Positive = Annotated[float, Field(gt=0)]
# NaN compares false with everything and inf never clears: both would silently disable a
# rule, so no section of the book accepts them.
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


def _ordered(values: Sequence[float], sign: float, strict: bool) -> bool:
    """True when ``values`` get worse in the ``sign`` direction (strictly or not)."""
    steps = [sign * (b - a) for a, b in pairwise(values)]
    return all(s > 0 if strict else s >= 0 for s in steps)


class Direction(StrEnum):
    ABOVE = "above"  # higher is worse (water level, speed)
    BELOW = "below"  # lower is worse (traffic speed)


class Level(BaseModel):
    model_config = STRICT

    name: str = Field(min_length=1)
    severity: Severity
    raise_at: float = Field(alias="raise", description="crossing this (strictly) raises/escalates")
    clear_at: float = Field(alias="clear", description="back past this (strictly) de-escalates")


class Rule(BaseModel):
    model_config = STRICT

    kind: str = Field(min_length=1)
    domain: str = Field(min_length=1)
    description: str = ""
    direction: Direction = Direction.ABOVE
    min_duration_s: float = Field(0.0, ge=0)
    clear_duration_s: float = Field(0.0, ge=0)
    renotify_s: float = Field(0.0, ge=0, description="0: never re-notify")
    max_silence_s: float = Field(0.0, ge=0, description="0: silence never clears")
    worsen_step: float = Field(0.0, ge=0, description="0: no update when the worst value grows")
    levels: list[Level] = Field(min_length=1, alias="level")

    @model_validator(mode="after")
    def _ladder(self) -> Rule:
        sign = 1.0 if self.direction is Direction.ABOVE else -1.0
        for lv in self.levels:
            if sign * (lv.raise_at - lv.clear_at) < 0:
                raise ValueError(
                    f"{self.kind}/{lv.name}: clear must be on the safe side of raise (hysteresis)"
                )
        for lower, higher in zip(self.levels, self.levels[1:], strict=False):
            if sign * (higher.raise_at - lower.raise_at) <= 0:
                raise ValueError(
                    f"{self.kind}: levels must get worse in order ({lower.name} → {higher.name})"
                )
        # A higher level that clears on the safe side of a lower one's clear would hold the
        # higher level after the lower one has already let go: an inverted ladder.
        if not _ordered([lv.clear_at for lv in self.levels], sign, strict=False):
            raise ValueError(f"{self.kind}: clear thresholds must get worse in level order")
        return self


class TransitConfig(BaseModel):
    model_config = STRICT

    default_limit_kmh: float = Field(60.0, gt=0)
    limits_kmh: dict[str, Positive] = Field(default_factory=dict, description="per corridor")

    def limit_for(self, corridor: str) -> float:
        return self.limits_kmh.get(corridor, self.default_limit_kmh)


class FloodConfig(BaseModel):
    model_config = STRICT

    rise_window_min: float = Field(15.0, gt=0, description="rate of rise is measured over this")
    report_window_h: float = Field(6.0, gt=0, description="citizen reports count this long")
    # Depth (cm) of a citizen report that puts its kecamatan at Waspada, Siaga, Awas.
    report_bands_cm: tuple[float, float, float] = (10.0, 30.0, 70.0)
    # Citizens' reports alone raise a kecamatan no higher than Waspada unless this many
    # reports in the window agree on the higher band, or a gauge of the kecamatan is itself
    # at Waspada or above: one anonymous report must not set Awas.
    corroborating_reports: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _bands(self) -> FloodConfig:
        if self.report_bands_cm[0] < 0 or not _ordered(self.report_bands_cm, 1.0, strict=True):
            raise ValueError("report_bands_cm must be non-negative and strictly increasing")
        return self


class TrafficConfig(BaseModel):
    model_config = STRICT

    window_s: int = Field(300, gt=0)
    # Mean speed / free-flow speed at or above which a segment is free, moderate, heavy;
    # below the last it is jammed.
    congestion_bands: tuple[float, float, float] = (0.75, 0.5, 0.25)

    @model_validator(mode="after")
    def _bands(self) -> TrafficConfig:
        bands = self.congestion_bands
        if bands[-1] < 0 or not _ordered(bands, -1.0, strict=True):
            raise ValueError("congestion_bands must be non-negative and strictly decreasing")
        return self

    def congestion(self, ratio: float | None) -> str:
        if ratio is None:
            return "unknown"
        for name, floor in zip(("free", "moderate", "heavy"), self.congestion_bands, strict=True):
            if ratio >= floor:
                return name
        return "jammed"


class CctvConfig(BaseModel):
    model_config = STRICT

    incident_gap_min: float = Field(
        10.0, gt=0, description="events of a camera and kind closer than this are one incident"
    )
    # Events below this confidence are stored but open no incident.
    min_confidence: float = Field(0.5, ge=0, le=1)


class WasteConfig(BaseModel):
    model_config = STRICT

    idle_speed_kmh: float = Field(3.0, ge=0, description="slower than this counts as standing")
    timezone_offset_h: float = Field(7.0, description="daily totals are per local day (WIB)")


class SourcesConfig(BaseModel):
    model_config = STRICT

    default_silent_after_s: float = Field(
        120.0, gt=0, description="a running source with no event for this long is silent"
    )
    # Per connector name: sources that publish rarely by nature (daily prices, reports).
    silent_after_s: dict[str, Positive] = Field(default_factory=dict)

    def limit_for(self, connector: str) -> float:
        return self.silent_after_s.get(connector, self.default_silent_after_s)


class RuleBook(BaseModel):
    model_config = STRICT

    rules: list[Rule] = Field(alias="rule")
    transit: TransitConfig = Field(default_factory=TransitConfig)
    flood: FloodConfig = Field(default_factory=FloodConfig)
    traffic: TrafficConfig = Field(default_factory=TrafficConfig)
    cctv: CctvConfig = Field(default_factory=CctvConfig)
    waste: WasteConfig = Field(default_factory=WasteConfig)
    procurement: ProcurementConfig = Field(default_factory=ProcurementConfig)
    prices: PricesConfig = Field(default_factory=PricesConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)

    @model_validator(mode="after")
    def _unique(self) -> RuleBook:
        kinds = [r.kind for r in self.rules]
        dupes = {k for k in kinds if kinds.count(k) > 1}
        if dupes:
            raise ValueError(f"duplicate rule kinds: {sorted(dupes)}")
        if self.prices.min_median_days > self.prices.median_days:
            raise ValueError("prices: min_median_days is more than median_days (no median ever)")
        return self

    def rule(self, kind: str) -> Rule:
        for r in self.rules:
            if r.kind == kind:
                return r
        raise KeyError(f"no alarm rule {kind!r} in the rule book")


class RuleBookError(ValueError):
    """The rules file is missing or invalid; the message names the file and the field."""


def load_rules(path: Path | None = None) -> RuleBook:
    path = path or DEFAULT_RULES
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleBookError(f"{path}: {exc}") from exc
    try:
        return RuleBook.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RuleBookError(f"{path}: {where}: {first['msg']}") from exc
