"""Spatial plan layers: the city's kecamatan and zoning, as GeoJSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from schemas.spatial import LAYERS, load_layer

router = APIRouter(prefix="/v1/layers", tags=["spatial plan"])


@router.get("", summary="Available layers")
async def layers() -> list[str]:
    return sorted(LAYERS)


@router.get("/{name}", summary="A layer as a GeoJSON FeatureCollection")
async def layer(name: str) -> dict[str, Any]:
    if name not in LAYERS:
        raise HTTPException(404, f"no layer {name!r}; available: {', '.join(sorted(LAYERS))}")
    return load_layer(name)
