"""Flood on the shared pipeline: one state for the whole city (see flood_logic), each
station on its own event clock with the allowed lateness of the settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from schemas.alarm_rules import RuleBook
from schemas.flood import StationRegistry
from schemas.settings import Settings
from schemas.spatial import Gazetteer
from streams.checkpoints import Checkpoints
from streams.flood_logic import FloodProcessor, flood_state_key
from streams.pipeline import Pipeline, Producer, StateKey
from streams.sink import BaseSink


def flood_pipeline(
    settings: Settings,
    book: RuleBook,
    registry: StationRegistry,
    gazetteer: Gazetteer,
    sink: BaseSink,
    checkpoints: Checkpoints,
    producer: Producer,
    highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:
    def factory(key: StateKey, saved: bytes | None) -> FloodProcessor:
        return FloodProcessor(
            book, registry, gazetteer, settings.max_future_s, saved,
            lateness_s=settings.window_allowed_lateness_s,
            keep_outside=settings.service_area is None,
        )  # fmt: skip

    return Pipeline(
        "flood", settings, sink, checkpoints, producer, factory,
        state_key=flood_state_key, highwater=highwater, clock=clock,
    )  # fmt: skip
