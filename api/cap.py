"""CAP 1.2 (OASIS Common Alerting Protocol) for flood alarms, and an Atom feed of them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
SENDER = "situation-room@semarangkota.go.id"

# Level → (CAP severity, urgency) ; Indonesian flood levels: Waspada, Siaga, Awas.
_LEVELS = {
    "waspada": ("Moderate", "Expected"),
    "siaga": ("Severe", "Immediate"),
    "awas": ("Extreme", "Immediate"),
}


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "+00:00")


def _sub(parent: ET.Element, tag: str, text: str | None = None, ns: str = CAP_NS) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        el.text = text
    return el


def alert_element(alarm: dict[str, Any]) -> ET.Element:
    ctx = alarm.get("context") or {}
    level = alarm.get("level", "")
    severity, urgency = _LEVELS.get(level, ("Minor", "Future"))
    cleared = alarm.get("state") == "cleared"
    alert = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(alert, "identifier", f"{alarm['id']}#{alarm['version']}")
    _sub(alert, "sender", SENDER)
    _sub(alert, "sent", _ts(alarm["last_seen"]))
    _sub(alert, "status", "Actual")
    _sub(
        alert, "msgType", "Cancel" if cleared else ("Alert" if alarm["version"] == 1 else "Update")
    )
    _sub(alert, "scope", "Public")
    info = _sub(alert, "info")
    _sub(info, "language", "id-ID")
    _sub(info, "category", "Met")
    kind = alarm.get("kind", "")
    what = {
        "flood_level": "Banjir",
        "flood_rise": "Kenaikan muka air cepat",
        "station_silent": "Pos pantau tidak melapor",
    }
    _sub(info, "event", what.get(kind, kind))
    _sub(info, "urgency", "Past" if cleared else urgency)
    _sub(info, "severity", severity)
    _sub(info, "certainty", "Observed")
    _sub(info, "effective", _ts(alarm["started_at"]))
    _sub(info, "senderName", "Situation Room Kota Semarang")
    station = ctx.get("station") or alarm["entity"]
    _sub(
        info,
        "headline",
        f"{what.get(kind, kind)} {level.upper()} - {station} ({ctx.get('river', '')})",
    )
    _sub(info, "description",
         f"Muka air {alarm['value']:.0f} cm di {station}, {ctx.get('river', '')}; status {level}. "
         f"Ambang {alarm['threshold']:.0f} cm.")  # fmt: skip
    _sub(info, "instruction", "Ikuti arahan BPBD Kota Semarang. Hindari bantaran sungai.")
    area = _sub(info, "area")
    _sub(area, "areaDesc", f"Kecamatan {ctx.get('kecamatan', '')}, Kota Semarang")
    if "lat" in ctx and "lon" in ctx:
        _sub(area, "circle", f"{ctx['lat']},{ctx['lon']} 1.0")
    return alert


def alert_xml(alarm: dict[str, Any]) -> bytes:
    ET.register_namespace("", CAP_NS)
    return ET.tostring(alert_element(alarm), encoding="utf-8", xml_declaration=True)


def feed_xml(alarms: list[dict[str, Any]], self_url: str) -> bytes:
    ET.register_namespace("", ATOM_NS)
    ET.register_namespace("cap", CAP_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _sub(feed, "id", self_url, ATOM_NS)
    _sub(feed, "title", "Peringatan banjir aktif - Kota Semarang", ATOM_NS)
    _sub(
        feed,
        "updated",
        _ts(max((a["last_seen"] for a in alarms), default=datetime.now(UTC))),
        ATOM_NS,
    )
    for alarm in alarms:
        entry = _sub(feed, "entry", None, ATOM_NS)
        _sub(entry, "id", f"urn:sitroom:alarm:{alarm['id']}", ATOM_NS)
        _sub(entry, "title", f"{alarm['kind']} {alarm['level']} {alarm['entity']}", ATOM_NS)
        _sub(entry, "updated", _ts(alarm["last_seen"]), ATOM_NS)
        content = _sub(entry, "content", None, ATOM_NS)
        content.set("type", "application/cap+xml")
        content.append(alert_element(alarm))
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
