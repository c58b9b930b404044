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
    # CAP's dateTime: seconds, and the offset as +hh:mm (never "Z").
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def _sub(parent: ET.Element, tag: str, text: str | None = None, ns: str = CAP_NS) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        el.text = text
    return el


# What each kind of flood alarm is called, and what its value means, in the public's words.
EVENTS = {
    "flood_level": "Banjir",
    "flood_rise": "Kenaikan muka air cepat",
    "station_silent": "Pos pantau tidak melapor",
}


def _description(alarm: dict[str, Any], station: str, level: str) -> str:
    """The facts of the alarm in its own terms: a level in cm, a rise in cm per hour, a
    silence in minutes. One template for all stated a rise of 31 cm/h as "Muka air 31 cm"."""
    ctx = alarm.get("context") or {}
    kind, value, threshold = alarm.get("kind", ""), alarm["value"], alarm["threshold"]
    where = f"{station}, {ctx['river']}" if ctx.get("river") else station
    if kind == "flood_level":
        return (f"Muka air {value:.0f} cm di {where}; status {level}. "
                f"Ambang {level} {threshold:.0f} cm.")  # fmt: skip
    if kind == "flood_rise":
        now = f" Muka air kini {ctx['level_cm']:.0f} cm." if "level_cm" in ctx else ""
        return (f"Muka air di {where} naik {value:.0f} cm per jam "
                f"(ambang {threshold:.0f} cm per jam).{now}")  # fmt: skip
    if kind == "station_silent":
        return (f"Pos pantau {where} tidak mengirim data selama {value:.0f} menit "
                f"(ambang {threshold:.0f} menit). Status banjir di sekitarnya tidak "
                "dapat dipastikan dari pos ini.")  # fmt: skip
    return f"{kind} {level}: nilai {value:g}, ambang {threshold:g}."


def identifier(alarm_id: str, version: int) -> str:
    return f"{alarm_id}#{version}"


def alert_element(
    alarm: dict[str, Any], earlier: list[tuple[int, datetime]] | None = None
) -> ET.Element:
    """One CAP 1.2 alert for one version of an alarm. ``earlier``: the versions sent before
    it (version, sent), which an Update or Cancel must reference."""
    ctx = alarm.get("context") or {}
    level = alarm.get("level", "")
    severity, urgency = _LEVELS.get(level, ("Minor", "Future"))
    cleared = alarm.get("state") == "cleared"
    version = int(alarm["version"])
    alert = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(alert, "identifier", identifier(alarm["id"], version))
    _sub(alert, "sender", SENDER)
    _sub(alert, "sent", _ts(alarm["last_seen"]))
    _sub(alert, "status", "Actual")
    _sub(alert, "msgType", "Cancel" if cleared else ("Alert" if version == 1 else "Update"))
    _sub(alert, "scope", "Public")
    before = sorted((v, sent) for v, sent in (earlier or []) if v < version)
    if before:
        _sub(alert, "references", " ".join(f"{SENDER},{identifier(alarm['id'], v)},{_ts(sent)}"
                                           for v, sent in before))  # fmt: skip
    info = _sub(alert, "info")
    _sub(info, "language", "id-ID")
    _sub(info, "category", "Met")
    kind = alarm.get("kind", "")
    _sub(info, "event", EVENTS.get(kind, kind))
    _sub(info, "urgency", "Past" if cleared else urgency)
    _sub(info, "severity", severity)
    _sub(info, "certainty", "Observed")
    _sub(info, "effective", _ts(alarm["started_at"]))
    _sub(info, "senderName", "Situation Room Kota Semarang")
    station = ctx.get("station") or alarm["entity"]
    river = f" ({ctx['river']})" if ctx.get("river") else ""
    headline = f"{EVENTS.get(kind, kind)} {level.upper()} - {station}{river}"
    _sub(info, "headline", ("SELESAI: " if cleared else "") + headline)
    _sub(info, "description", _description(alarm, station, level))
    if kind == "station_silent":
        _sub(info, "instruction", "Petugas memeriksa pos pantau. Pantau informasi BPBD.")
    else:
        _sub(info, "instruction", "Ikuti arahan BPBD Kota Semarang. Hindari bantaran sungai.")
    area = _sub(info, "area")
    _sub(area, "areaDesc", f"Kecamatan {ctx.get('kecamatan') or '-'}, Kota Semarang")
    if "lat" in ctx and "lon" in ctx:
        _sub(area, "circle", f"{ctx['lat']},{ctx['lon']} 1.0")
    return alert


def alert_xml(alarm: dict[str, Any], earlier: list[tuple[int, datetime]] | None = None) -> bytes:
    ET.register_namespace("", CAP_NS)
    return ET.tostring(alert_element(alarm, earlier), encoding="utf-8", xml_declaration=True)


def feed_xml(
    alarms: list[dict[str, Any]],
    self_url: str,
    earlier: dict[str, list[tuple[int, datetime]]] | None = None,
) -> bytes:
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
        content.append(alert_element(alarm, (earlier or {}).get(alarm["id"])))
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
