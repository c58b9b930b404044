"""Kecamatan tagging from the grid-cell cache answers exactly what the polygons say.

The reference is shapely asked directly, point by point: the lowest-index polygon that
``intersects`` the point, else None. Points are sampled where a cache can go wrong: on
and next to every edge and vertex (shared borders included), on and next to cell corners
and cell edges, and anywhere (hypothesis); each set is asked of a cold cache, of a warm
one, and one point at a time through ``at``."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import spatial
from schemas.spatial import CELL_DEG, Layer, load_layer

Point = tuple[float, float]


def kecamatan() -> Layer:
    """A layer with an empty cache (gazetteer() is shared and already warm)."""
    return Layer(load_layer("kecamatan"), "kecamatan")


LAYER = kecamatan()
MINX, MINY, MAXX, MAXY = (float(v) for v in shapely.total_bounds(LAYER.geoms))


def reference(layer: Layer, points: list[Point]) -> list[str | None]:
    if not points:
        return []
    pts = shapely.points(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    out: list[str | None] = [None] * len(points)
    for g in reversed(range(len(layer.geoms))):  # lowest index written last: it wins
        for i in np.flatnonzero(shapely.intersects(layer.geoms[g], pts)).tolist():
            out[i] = layer.labels[g]
    return out


def nudged(x: float, y: float) -> Iterator[Point]:
    """The point and its neighbours one ulp and a few small steps away, in 8 directions."""
    steps = [0.0, 1e-12, 1e-9, 1e-7]
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            yield (
                math.nextafter(x, dx * math.inf) if dx else x,
                math.nextafter(y, dy * math.inf) if dy else y,
            )
            for s in steps[1:]:
                yield x + dx * s, y + dy * s


def border_points(layer: Layer, per_edge: int = 7, seed: int = 1) -> list[Point]:
    rnd = random.Random(seed)
    out: list[Point] = []
    for geom in layer.geoms:
        for ring in [geom.exterior, *geom.interiors]:
            coords = list(ring.coords)
            for (x0, y0), (x1, y1) in pairwise(coords):
                out.extend(nudged(x0, y0))  # the vertex
                for k in range(per_edge):
                    t = (k + 1) / (per_edge + 1) if k < per_edge - 2 else rnd.random()
                    out.extend(nudged(x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
    return out


def cell_points(step: int = 1) -> list[Point]:
    """Cell corners (as floor() sees them and as decimals), and points on cell edges."""
    out: list[Point] = []
    i0, i1 = math.floor(MINX / CELL_DEG) - 1, math.floor(MAXX / CELL_DEG) + 2
    j0, j1 = math.floor(MINY / CELL_DEG) - 1, math.floor(MAXY / CELL_DEG) + 2
    for i in range(i0, i1, step):
        for j in range(j0, j1, step):
            for x, y in ((i * CELL_DEG, j * CELL_DEG), (round(i * 0.005, 3), round(j * 0.005, 3))):
                out.extend(
                    (x + dx, y + dy) for dx in (0.0, -1e-12, 1e-12) for dy in (0.0, -1e-12, 1e-12)
                )
                out.append((x + CELL_DEG / 2, y))  # on a horizontal cell edge
                out.append((x, y + CELL_DEG / 3))  # on a vertical one
    return out


def check(points: list[Point]) -> None:
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    expected = reference(LAYER, points)
    layer = kecamatan()
    cold = layer.many(lons, lats)
    assert cold == expected, mismatches(points, cold, expected)
    warm = layer.many(lons, lats)
    assert warm == expected, mismatches(points, warm, expected)
    # The reverse order on a cold cache: a cell's first point must not decide the others.
    back = kecamatan().many(lons[::-1], lats[::-1])[::-1]
    assert back == expected, mismatches(points, back, expected)
    one_cold = kecamatan()
    singles_cold = [one_cold.at(x, y) for x, y in points]
    assert singles_cold == expected, mismatches(points, singles_cold, expected)
    singles_warm = [layer.at(x, y) for x, y in points]
    assert singles_warm == expected, mismatches(points, singles_warm, expected)


def mismatches(points: list[Point], got: list[str | None], want: list[str | None]) -> str:
    bad = [(p, g, w) for p, g, w in zip(points, got, want, strict=True) if g != w]
    return f"{len(bad)} of {len(points)} differ, e.g. (point, got, want): {bad[:5]}"


def test_the_layer_has_shared_borders_and_overlaps_to_test() -> None:
    """The sampling below is only worth something if points on two polygons exist."""
    points = border_points(LAYER)
    pts = shapely.points(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    hits = sum(shapely.intersects(g, pts).astype(int) for g in LAYER.geoms)
    assert (hits >= 2).sum() > 100
    assert (hits == 0).sum() > 100 and (hits == 1).sum() > 100


def test_points_on_and_beside_every_border_and_vertex() -> None:
    check(border_points(LAYER))


def test_points_on_and_beside_cell_corners_and_edges() -> None:
    check(cell_points())


def test_many_points_in_one_batch_mixed_with_interior_ones() -> None:
    rnd = random.Random(7)
    points = border_points(LAYER, per_edge=3, seed=3)
    points += [(rnd.uniform(MINX, MAXX), rnd.uniform(MINY, MAXY)) for _ in range(3000)]
    rnd.shuffle(points)
    check(points)


def test_empty_batch() -> None:
    assert kecamatan().many([], []) == []


near_vertex = st.builds(
    lambda v, dx, dy: (v[0] + dx, v[1] + dy),
    st.sampled_from([c for g in LAYER.geoms for c in g.exterior.coords]),
    st.floats(-2 * CELL_DEG, 2 * CELL_DEG),
    st.floats(-2 * CELL_DEG, 2 * CELL_DEG),
)
near_corner = st.builds(
    lambda i, j, dx, dy: (i * CELL_DEG + dx, j * CELL_DEG + dy),
    st.integers(math.floor(MINX / CELL_DEG) - 1, math.floor(MAXX / CELL_DEG) + 1),
    st.integers(math.floor(MINY / CELL_DEG) - 1, math.floor(MAXY / CELL_DEG) + 1),
    st.sampled_from([0.0, 1e-15, -1e-15, 1e-10, -1e-10]),
    st.sampled_from([0.0, 1e-15, -1e-15, 1e-10, -1e-10]),
)
anywhere = st.tuples(st.floats(MINX - 0.02, MAXX + 0.02), st.floats(MINY - 0.02, MAXY + 0.02))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(near_vertex, near_corner, anywhere), min_size=1, max_size=60))
def test_hypothesis_points_match_shapely(points: list[Point]) -> None:
    check(points)


@settings(max_examples=40, deadline=None)
@given(
    warmup=st.lists(st.one_of(near_vertex, near_corner, anywhere), max_size=40),
    points=st.lists(st.one_of(near_vertex, near_corner, anywhere), min_size=1, max_size=40),
)
def test_a_cache_warmed_by_other_points_answers_the_same(
    warmup: list[Point], points: list[Point]
) -> None:
    layer = kecamatan()
    layer.many([p[0] for p in warmup], [p[1] for p in warmup])
    got = layer.many([p[0] for p in points], [p[1] for p in points])
    assert got == reference(LAYER, points)


def test_cache_stays_bounded_over_a_wide_area(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spatial, "MAX_CELLS", 50)
    layer = kecamatan()
    rnd = random.Random(11)
    for _ in range(40):
        # A wide replay: every point in a different cell, many far from the city.
        points = [(rnd.uniform(105.0, 115.0), rnd.uniform(-10.0, -3.0)) for _ in range(30)]
        points += [(rnd.uniform(MINX, MAXX), rnd.uniform(MINY, MAXY)) for _ in range(30)]
        got = layer.many([p[0] for p in points], [p[1] for p in points])
        assert len(layer._cells) <= 50
        assert got == reference(LAYER, points)
    assert len(layer._cells) > 0  # the cache is still used, not switched off
    # One batch wider than the cap alone: bounded within the call, answers still exact.
    points = [(110.0 + i * CELL_DEG, -7.0 + (i % 7) * CELL_DEG) for i in range(500)]
    points += border_points(LAYER, per_edge=1)[:500]
    got = layer.many([p[0] for p in points], [p[1] for p in points])
    assert len(layer._cells) <= 50
    assert got == reference(LAYER, points)


def test_the_cache_is_used_for_interior_cells() -> None:
    """Not a timing claim: a point deep inside a polygon is answered from a cached cell."""
    layer = kecamatan()
    rnd = random.Random(5)
    points = [(rnd.uniform(MINX, MAXX), rnd.uniform(MINY, MAXY)) for _ in range(2000)]
    layer.many([p[0] for p in points], [p[1] for p in points])
    labelled = [v for v in layer._cells.values() if isinstance(v, str)]
    assert labelled and None in layer._cells.values()
