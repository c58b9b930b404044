"""The official OASIS CAP 1.2 XML Schema, for validating every alert the tests make
(tests/fixtures/cap/CAP-v1.2.xsd; source in tests/fixtures/README.md)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from xml.etree import ElementTree as ET

import xmlschema

XSD = Path(__file__).resolve().parent / "fixtures" / "cap" / "CAP-v1.2.xsd"
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"


@cache
def cap_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def assert_valid_cap(xml: bytes) -> list[ET.Element]:
    """Validate every CAP alert in ``xml`` (one alert, or an Atom feed of them) and return
    them; an invalid one fails with the schema's reason."""
    root = ET.fromstring(xml)
    alerts = [root] if root.tag == f"{{{CAP_NS}}}alert" else list(root.iter(f"{{{CAP_NS}}}alert"))
    for alert in alerts:
        cap_schema().validate(ET.tostring(alert).decode())
    return alerts
