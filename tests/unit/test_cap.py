"""CAP 1.2 alerts a disaster agency can rebroadcast: each kind says what its value is,
Updates and Cancels reference what they follow, and every alert passes the official
schema."""

from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from api.cap import alert_xml, feed_xml
from tests.cap_schema import CAP_NS, assert_valid_cap

NS = {"cap": CAP_NS}
T0 = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
CONTEXT = {"station": "Pos Kaligarang", "river": "Kali Garang", "kecamatan": "Semarang Barat",
           "lat": -6.99, "lon": 110.40}  # fmt: skip


def alarm(kind: str, value: float, threshold: float, version: int = 1, state: str = "raised",
          level: str = "siaga", **ctx: Any) -> dict[str, Any]:  # fmt: skip
    return {"id": f"{kind}/KG01/1768014000000", "kind": kind, "entity": "KG01", "level": level,
            "state": state, "version": version, "value": value, "threshold": threshold,
            "started_at": T0, "last_seen": T0 + timedelta(minutes=10 * version),
            "context": {**CONTEXT, **ctx}}  # fmt: skip


def text(alert: ET.Element, path: str) -> str:
    return alert.findtext(path, namespaces=NS) or ""


@pytest.mark.parametrize(
    ("made", "says"),
    [
        (alarm("flood_level", 152, 150), "Muka air 152 cm di Pos Kaligarang, Kali Garang"),
        (alarm("flood_rise", 31, 30, level="rising", level_cm=152),
         "naik 31 cm per jam (ambang 30 cm per jam). Muka air kini 152 cm"),
        (alarm("station_silent", 47, 30, level="silent"),
         "tidak mengirim data selama 47 menit (ambang 30 menit)"),
    ],
)  # fmt: skip
def test_each_kind_states_its_own_facts(made: dict[str, Any], says: str) -> None:
    (alert,) = assert_valid_cap(alert_xml(made))
    description = text(alert, "cap:info/cap:description")
    assert says in description
    if made["kind"] != "flood_level":
        assert "Muka air 31 cm" not in description and "Muka air 47 cm" not in description


def test_updates_and_cancels_reference_what_they_follow() -> None:
    sent = [(1, T0 + timedelta(minutes=10)), (2, T0 + timedelta(minutes=20))]
    (first,) = assert_valid_cap(alert_xml(alarm("flood_level", 152, 150), sent[:0]))
    assert text(first, "cap:msgType") == "Alert" and first.find("cap:references", NS) is None
    (update,) = assert_valid_cap(alert_xml(alarm("flood_level", 181, 180, version=2), sent[:1]))
    assert text(update, "cap:msgType") == "Update"
    assert text(update, "cap:references") == (
        "situation-room@semarangkota.go.id,flood_level/KG01/1768014000000#1,2026-01-10T03:10:00+00:00"
    )
    cancel_xml = alert_xml(alarm("flood_level", 90, 150, version=3, state="cleared"), sent)
    (cancel,) = assert_valid_cap(cancel_xml)
    assert (
        text(cancel, "cap:msgType") == "Cancel" and text(cancel, "cap:info/cap:urgency") == "Past"
    )
    assert len(text(cancel, "cap:references").split(" ")) == 2
    assert text(cancel, "cap:identifier") == "flood_level/KG01/1768014000000#3"


def test_a_feed_of_every_kind_passes_the_schema() -> None:
    alarms = [alarm("flood_level", 152, 150, version=2), alarm("flood_rise", 31, 30),
              {**alarm("station_silent", 47, 30), "context": {"station": "Pos X"}}]  # fmt: skip
    earlier = {alarms[0]["id"]: [(1, T0)]}
    alerts = assert_valid_cap(feed_xml(alarms, "http://room/v1/flood/cap", earlier))
    assert len(alerts) == 3


def test_the_schema_check_can_fail() -> None:
    bad = alert_xml(alarm("flood_level", 152, 150)).replace(b"Actual", b"Real")
    with pytest.raises(Exception, match="status"):
        assert_valid_cap(bad)
