"""Alarm rules: thresholds, durations and level ladders, read from a TOML file.

The file is configuration, validated here; code never holds a threshold. The default
ships as ``schemas/alarm_rules.toml``; ``SITROOM_ALARM_RULES`` points at another.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.alarms import Severity
from schemas.prices import PricesConfig
from schemas.procurement import ProcurementConfig
from schemas.reports import ReportsConfig

DEFAULT_RULES = Path(__file__).with_name("alarm_rules.toml")


class Direction(StrEnum):
    ABOVE = "above"  # higher is worse (water level, speed)
    BELOW = "below"  # lower is worse (traffic speed)


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    severity: Severity
    raise_at: float = Field(alias="raise", description="crossing this (strictly) raises/escalates")
    clear_at: float = Field(alias="clear", description="back past this (strictly) de-escalates")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
        return self


class TransitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_limit_kmh: float = Field(60.0, gt=0)
    limits_kmh: dict[str, float] = Field(default_factory=dict, description="per corridor")

    def limit_for(self, corridor: str) -> float:
        return self.limits_kmh.get(corridor, self.default_limit_kmh)


class FloodConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rise_window_min: float = Field(15.0, gt=0, description="rate of rise is measured over this")
    report_window_h: float = Field(6.0, gt=0, description="citizen reports count this long")
    # Depth (cm) of a citizen report that puts its kecamatan at Waspada, Siaga, Awas.
    report_bands_cm: tuple[float, float, float] = (10.0, 30.0, 70.0)


class TrafficConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_s: int = Field(300, gt=0)
    # Mean speed / free-flow speed at or above which a segment is free, moderate, heavy;
    # below the last it is jammed.
    congestion_bands: tuple[float, float, float] = (0.75, 0.5, 0.25)

    def congestion(self, ratio: float | None) -> str:
        if ratio is None:
            return "unknown"
        for name, floor in zip(("free", "moderate", "heavy"), self.congestion_bands, strict=True):
            if ratio >= floor:
                return name
        return "jammed"


class CctvConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incident_gap_min: float = Field(
        10.0, gt=0, description="events of a camera and kind closer than this are one incident"
    )
    # Events below this confidence are stored but open no incident.
    min_confidence: float = Field(0.5, ge=0, le=1)


class WasteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idle_speed_kmh: float = Field(3.0, ge=0, description="slower than this counts as standing")
    timezone_offset_h: float = Field(7.0, description="daily totals are per local day (WIB)")


class SourcesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_silent_after_s: float = Field(
        120.0, gt=0, description="a running source with no event for this long is silent"
    )
    # Per connector name: sources that publish rarely by nature (daily prices, reports).
    silent_after_s: dict[str, float] = Field(default_factory=dict)

    def limit_for(self, connector: str) -> float:
        return self.silent_after_s.get(connector, self.default_silent_after_s)


class RuleBook(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
