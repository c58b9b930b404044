"""The city's spatial layers (kecamatan, zoning) and fast point-in-polygon tagging.

The layers ship as GeoJSON in ``schemas/geodata`` (approximate; each file says how it was
made). Lookups use a shapely STRtree. Points of a moving fleet fall again and again in the
same few hundred cells of a grid, so a cell that lies wholly inside one polygon (or
outside all) answers from a dict, and only points in cells a border crosses are queried.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from math import floor
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape

# ~550 m at Semarang's latitude: most cells of a kecamatan lie inside it.
CELL_DEG = 0.005
MAX_CELLS = 200_000  # a replay of a wide area must not grow the cache without bound
_MIXED = object()  # a border crosses the cell: ask the tree

GEODATA = Path(__file__).with_name("geodata")
LAYERS = {"kecamatan": "semarang_kecamatan.geojson", "zoning": "semarang_zoning.geojson"}


def load_layer(name: str) -> dict[str, Any]:
    if name not in LAYERS:
        raise KeyError(f"unknown layer {name!r}; known: {sorted(LAYERS)}")
    return json.loads((GEODATA / LAYERS[name]).read_text())  # type: ignore[no-any-return]


class Layer:
    """Polygons with one label each, indexed for point lookups. A point inside two
    polygons (on a shared border, or where approximate polygons overlap) takes the one
    listed first."""

    def __init__(self, collection: dict[str, Any], label: str) -> None:
        self.labels = [f["properties"][label] for f in collection["features"]]
        self.geoms = [shape(f["geometry"]) for f in collection["features"]]
        self.tree = shapely.STRtree(self.geoms)
        self._cells: dict[tuple[int, int], object] = {}

    def at(self, lon: float, lat: float) -> str | None:
        return self.many([lon], [lat])[0]

    def _cell(self, key: tuple[int, int]) -> object:
        """The label every point of the cell has (None: outside every polygon), or _MIXED."""
        x, y = key[0] * CELL_DEG, key[1] * CELL_DEG
        box = shapely.box(x, y, x + CELL_DEG, y + CELL_DEG)
        hits = self.tree.query(box, predicate="intersects")
        if len(hits) == 0:
            return None
        if len(hits) == 1 and self.geoms[int(hits[0])].contains_properly(box):
            return self.labels[int(hits[0])]
        return _MIXED

    def many(self, lons: Sequence[float], lats: Sequence[float]) -> list[str | None]:
        """Label of each point (None outside every polygon)."""
        cells = self._cells
        out: list[str | None] = []
        exact: list[int] = []  # points in a cell a border crosses
        for i, (lon, lat) in enumerate(zip(lons, lats, strict=True)):
            key = (floor(lon / CELL_DEG), floor(lat / CELL_DEG))
            found = cells.get(key, _MIXED)
            if found is _MIXED and key not in cells:
                if len(cells) >= MAX_CELLS:
                    cells.clear()
                found = cells[key] = self._cell(key)
            if found is _MIXED:
                exact.append(i)
                out.append(None)
            else:
                out.append(found)  # type: ignore[arg-type]
        if exact:
            points = shapely.points(
                np.asarray([lons[i] for i in exact], dtype=float),
                np.asarray([lats[i] for i in exact], dtype=float),
            )
            point_idx, geom_idx = self.tree.query(points, predicate="intersects")
            first: dict[int, int] = {}
            for p, g in zip(point_idx.tolist(), geom_idx.tolist(), strict=True):
                first[p] = min(g, first.get(p, g))
            for p, g in first.items():
                out[exact[p]] = self.labels[g]
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
