"""Geodesy shared by connectors and streams."""

from __future__ import annotations

from math import asin, atan2, cos, degrees, pi, radians, sin, sqrt

EARTH_RADIUS_M = 6_371_008.8


_RADIANS = pi / 180.0  # what math.radians multiplies by
_DIAMETER_M = 2 * EARTH_RADIUS_M


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres. On every bus fix: the calls of ``radians`` and the
    halvings are written as the multiplications they are, bit for bit the same results
    (stored speeds must not change across versions)."""
    p1, p2 = lat1 * _RADIANS, lat2 * _RADIANS
    a = sin((p2 - p1) * 0.5) ** 2 + cos(p1) * cos(p2) * sin((lon2 - lon1) * _RADIANS * 0.5) ** 2
    return _DIAMETER_M * asin(min(1.0, sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from the first point to the second, degrees clockwise from north."""
    p1, p2 = radians(lat1), radians(lat2)
    dl = radians(lon2 - lon1)
    x = sin(dl) * cos(p2)
    y = cos(p1) * sin(p2) - sin(p1) * cos(p2) * cos(dl)
    return (degrees(atan2(x, y)) + 360.0) % 360.0


def offset_m(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """A point displaced by metres north and east (small distances)."""
    dlat = north_m / EARTH_RADIUS_M
    dlon = east_m / (EARTH_RADIUS_M * cos(radians(lat)))
    return lat + degrees(dlat), lon + degrees(dlon)
