"""Speed from consecutive fixes, with a filter for impossible jumps.

Most real feeds leave ``speed`` empty, so speed is derived from the previous accepted fix
of the same vehicle. A derived speed above the plausible bound is a bad fix (GPS jump):
it is flagged and skipped, and the next fix is compared with the last good one. A vehicle
that keeps "jumping" has really moved (a depot transfer, a restarted tracker), so after a
few rejections in a row the filter re-anchors on the new place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import msgspec

from schemas.geo import haversine_m


class FixQuality(StrEnum):
    OK = "ok"
    FIRST = "first"  # nothing to compare with (first fix, or after a long gap)
    STALE = "stale"  # not newer than the last accepted fix: duplicate or out of order
    BAD = "bad"  # implausible jump


class Anchor(msgspec.Struct, array_like=True, gc=False):
    ts: float
    lat: float
    lon: float
    rejected_streak: int = 0


@dataclass(frozen=True)
class SpeedRules:
    max_plausible_kmh: float = 150.0
    min_interval_s: float = 1.0  # shorter intervals amplify GPS noise into nonsense
    max_gap_s: float = 300.0  # beyond this, the previous fix says nothing about speed now
    reanchor_after: int = 3


class SpeedObservation(msgspec.Struct, frozen=True, gc=False):
    # Made twice per bus fix: a Struct is built several times faster than a frozen dataclass.
    quality: FixQuality
    speed_kmh: float | None  # reported if the device gave one, else derived
    derived_kmh: float | None
    interval_s: float | None  # time since the previous accepted fix


def derived_speed_kmh(a: Anchor, ts: float, lat: float, lon: float) -> float | None:
    dt = ts - a.ts
    if dt <= 0:
        return None
    return haversine_m(a.lat, a.lon, lat, lon) / dt * 3.6


def observe(
    anchor: Anchor | None,
    ts: float,
    lat: float,
    lon: float,
    reported_kmh: float | None,
    rules: SpeedRules,
) -> tuple[Anchor | None, SpeedObservation]:
    """Return the vehicle's new anchor and what this fix says about its speed."""
    if anchor is None:
        return Anchor(ts, lat, lon), SpeedObservation(FixQuality.FIRST, reported_kmh, None, None)
    dt = ts - anchor.ts
    if dt <= 0:
        return anchor, SpeedObservation(FixQuality.STALE, None, None, None)
    if dt > rules.max_gap_s:
        return Anchor(ts, lat, lon), SpeedObservation(FixQuality.FIRST, reported_kmh, None, None)
    derived = haversine_m(anchor.lat, anchor.lon, lat, lon) / dt * 3.6
    if derived > rules.max_plausible_kmh:
        if anchor.rejected_streak + 1 >= rules.reanchor_after:
            return Anchor(ts, lat, lon), SpeedObservation(FixQuality.BAD, None, derived, dt)
        anchor.rejected_streak += 1
        return anchor, SpeedObservation(FixQuality.BAD, None, derived, dt)
    if dt < rules.min_interval_s:
        # Keep the older anchor so the next fix gets a longer, steadier baseline.
        return anchor, SpeedObservation(FixQuality.OK, reported_kmh, None, None)
    speed = reported_kmh if reported_kmh is not None else derived
    return Anchor(ts, lat, lon), SpeedObservation(FixQuality.OK, speed, derived, dt)
