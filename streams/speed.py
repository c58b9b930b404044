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


class Anchor(msgspec.Struct, array_like=True, gc=False, frozen=True):
    # Immutable: the arrival and event-time chains of a vehicle may share anchors (an
    # observation made at arrival is reused at release when both chains agree).
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
        streak = Anchor(anchor.ts, anchor.lat, anchor.lon, anchor.rejected_streak + 1)
        return streak, SpeedObservation(FixQuality.BAD, None, derived, dt)
    if dt < rules.min_interval_s:
        # Keep the older anchor so the next fix gets a longer, steadier baseline.
        return anchor, SpeedObservation(FixQuality.OK, reported_kmh, None, None)
    speed = reported_kmh if reported_kmh is not None else derived
    return Anchor(ts, lat, lon), SpeedObservation(FixQuality.OK, speed, derived, dt)


# Reported/derived ratios that mean a unit slip: km/h written where m/s belongs (a GTFS-rt
# ``position.speed`` the connector then multiplies by 3.6 again), or m/s where km/h does.
KMH_AS_MS = 3.6
UNIT_BANDS = {"x3.6": (3.2, 4.0), "/3.6": (1 / 4.0, 1 / 3.2)}
UNIT_MIN_SAMPLES = 30
UNIT_SHARE = 0.7  # "steadily": this share of the samples in one band
UNIT_MIN_DERIVED_KMH = 10.0  # slower, GPS noise swamps the ratio


class UnitWatch(msgspec.Struct, array_like=True, gc=False):
    """Whether one source's reported speeds run steadily 3.6x (or 1/3.6x) the derived ones.

    Once it does, the source's reported speeds are not used (derived ones are), for good:
    a feed's unit does not change between two fixes, and flapping would make the numbers of
    one bus depend on which fixes came first."""

    samples: int = 0
    high: int = 0  # ratio near 3.6
    low: int = 0  # ratio near 1/3.6
    verdict: str = ""  # "", "x3.6" or "/3.6"

    def add(self, reported_kmh: float, derived_kmh: float) -> bool:
        """Count one fix with both speeds; True when this one settles the verdict."""
        if self.verdict or derived_kmh < UNIT_MIN_DERIVED_KMH:
            return False
        ratio = reported_kmh / derived_kmh
        self.samples += 1
        lo, hi = UNIT_BANDS["x3.6"]
        self.high += lo <= ratio <= hi
        lo, hi = UNIT_BANDS["/3.6"]
        self.low += lo <= ratio <= hi
        if self.samples < UNIT_MIN_SAMPLES:
            return False
        for verdict, hits in (("x3.6", self.high), ("/3.6", self.low)):
            if hits >= UNIT_SHARE * self.samples:
                self.verdict = verdict
                return True
        if self.samples >= 4 * UNIT_MIN_SAMPLES:
            # Plenty of evidence and no slip: start over, so that a slip that begins later
            # (a firmware update) is still found, and the counts stay small.
            self.samples = self.high = self.low = 0
        return False
