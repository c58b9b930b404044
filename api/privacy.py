"""What the public may see of personal data: the one place that says it (UU 27/2022:
purpose limitation and minimisation).

A citizen's words, exact point and photos, the names and notes of the staff who handled a
report, and licence plates are shown only to a caller with the ``staff`` role (or to
everyone when the API runs open on one machine). The public gets the report's category,
kecamatan, status and times: enough to see what the city is doing, not who asked.
"""

from __future__ import annotations

from typing import Any

from schemas import catalog
from schemas.spatial import gazetteer

# Personal fields of each live topic's items, dropped from the public view.
PERSONAL_FIELDS: dict[str, frozenset[str]] = {
    catalog.REPORT_EVENTS.name: frozenset({"text", "lat", "lon", "photo_urls", "actor", "note"}),
    catalog.FLOOD_REPORTS.name: frozenset({"lat", "lon", "note", "photo_url"}),
    catalog.CAMERA_EVENTS.name: frozenset({"plate"}),
}
# Columns of the report views that only staff see (null for the public).
REPORT_PERSONAL_COLUMNS = ("text", "lat", "lon", "photo_urls", "last_actor", "last_note")
EVENT_PERSONAL_COLUMNS = ("actor", "note")
FLOOD_REPORT_PERSONAL_COLUMNS = ("lat", "lon", "note", "photo_url")


def public_item(topic: str, item: Any) -> Any:
    """A live item as the public may see it: personal fields dropped, an exact point
    replaced by its kecamatan."""
    personal = PERSONAL_FIELDS.get(topic)
    if personal is None or not isinstance(item, dict):
        return item
    out = {k: v for k, v in item.items() if k not in personal}
    lat, lon = item.get("lat"), item.get("lon")
    if "lat" in personal and isinstance(lat, int | float) and isinstance(lon, int | float):
        out.setdefault("kecamatan", gazetteer().kecamatan.at(lon, lat))
    return out


def public_row(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """A stored row as the public may see it: the personal columns null (lists empty)."""
    out = dict(row)
    for column in columns:
        if column in out:
            out[column] = [] if isinstance(out[column], list) else None
    return out
