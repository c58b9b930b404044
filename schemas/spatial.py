"""The city's spatial layers (kecamatan, zoning) and fast point-in-polygon tagging.

The layers ship as GeoJSON in ``schemas/geodata`` (approximate; each file says how it was
made). Lookups use a shapely STRtree, so tagging a batch of points is one vectorised query.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape

GEODATA = Path(__file__).with_name("geodata")
LAYERS = {"kecamatan": "semarang_kecamatan.geojson", "zoning": "semarang_zoning.geojson"}


def load_layer(name: str) -> dict[str, Any]:
    if name not in LAYERS:
        raise KeyError(f"unknown layer {name!r}; known: {sorted(LAYERS)}")
    return json.loads((GEODATA / LAYERS[name]).read_text())  # type: ignore[no-any-return]


class Layer:
    """Polygons with one label each, indexed for point lookups."""

    def __init__(self, collection: dict[str, Any], label: str) -> None:
        self.labels = [f["properties"][label] for f in collection["features"]]
        self.geoms = [shape(f["geometry"]) for f in collection["features"]]
        self.tree = shapely.STRtree(self.geoms)

    def at(self, lon: float, lat: float) -> str | None:
        hits = self.tree.query(shapely.Point(lon, lat), predicate="intersects")
        return self.labels[int(min(hits))] if len(hits) else None

    def many(self, lons: Sequence[float], lats: Sequence[float]) -> list[str | None]:
        """Label of each point (None outside every polygon), in one query."""
        if not lons:
            return []
        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        point_idx, geom_idx = self.tree.query(points, predicate="intersects")
        out: list[str | None] = [None] * len(lons)
        for p, g in zip(point_idx.tolist(), geom_idx.tolist(), strict=True):
            if out[p] is None:  # a point on a shared border takes the first polygon
                out[p] = self.labels[g]
        return out


class Gazetteer:
    def __init__(self) -> None:
        self.kecamatan = Layer(load_layer("kecamatan"), "kecamatan")
        self.zoning = Layer(load_layer("zoning"), "name")

    def in_city(self, lon: float, lat: float) -> bool:
        return self.kecamatan.at(lon, lat) is not None


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    return Gazetteer()
