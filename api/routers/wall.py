"""The situation-room wall: one page at `/`, its assets under `/wall/`, all shipped in the
package (no CDN: the room's network may be closed). The page reads the public API and the
live stream `/v1/live/wall`; it asks for a token only when an action needs one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from schemas.alarm_rules import load_rules

WALL_DIR = Path(__file__).resolve().parents[1] / "wall"
# The wall is left open all day: a new release must reach it at its next reload.
_NO_CACHE = {"Cache-Control": "no-cache"}


def wall_config(request: Request) -> dict[str, Any]:
    """What the page needs besides the API: the base map, if any, and the corridors' speed
    limits (a bus is coloured against its own corridor's limit, as the overspeed rule)."""
    settings = request.app.state.settings
    transit = load_rules(settings.alarm_rules).transit
    return {
        "tile_url": settings.wall_tile_url,
        "tile_attribution": settings.wall_tile_attribution,
        "default_limit_kmh": transit.default_limit_kmh,
        "limits_kmh": dict(transit.limits_kmh),
        "max_plausible_speed_kmh": settings.max_plausible_speed_kmh,
    }


def install(app: FastAPI) -> None:
    """Serve the wall at `/` and its assets under `/wall/`."""

    @app.get("/", include_in_schema=False)
    def wall() -> FileResponse:
        return FileResponse(WALL_DIR / "index.html", headers=_NO_CACHE)

    app.add_api_route("/wall/config.json", wall_config, methods=["GET"], include_in_schema=False)
    app.mount("/wall", StaticFiles(directory=WALL_DIR), name="wall")
