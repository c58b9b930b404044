from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.alarm_rules import load_rules
from schemas.procurement import TenderEvent, parse_idr, slug


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3,8 Jt", 3_800_000),
        ("500 Jt", 500_000_000),
        ("0,8 Jt", 800_000),
        ("199,7 Jt", 199_700_000),
        ("1,25 M", 1_250_000_000),
        ("2 T", 2_000_000_000_000),
        ("750 Rb", 750_000),
        ("Rp. 3.800.000,00", 3_800_000),
        ("Rp 1.500.000", 1_500_000),
        ("12.500 Jt", 12_500_000_000),
        ("  67,4 jt ", 67_400_000),
    ],
)
def test_spse_amounts_use_the_indonesian_decimal_comma(text: str, value: int) -> None:
    assert parse_idr(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text", ["", "Jt", "tiga juta", "3,8 Kg", "1.50 Jt", "3,8,1 Jt", "-5 Jt", "3, Jt"]
)
def test_unreadable_amounts_raise(text: str) -> None:
    with pytest.raises(ValueError):
        parse_idr(text)


def _event(**kw: object) -> TenderEvent:
    base: dict[str, object] = {"event_id": "e", "source": "ocds", "tender_id": "t", "kind": "announced",
                               "ts": datetime(2025, 1, 1, tzinfo=UTC), "agency_id": "a"}  # fmt: skip
    return TenderEvent.model_validate({**base, **kw})


def test_events_must_be_consistent() -> None:
    assert _event().key == "ocds:t"
    with pytest.raises(ValidationError, match="tender_end is before"):
        _event(tender_start="2025-01-05T00:00:00Z", tender_end="2025-01-01T00:00:00Z")
    with pytest.raises(ValidationError, match="go together"):
        _event(estimate_amount=5.0)
    with pytest.raises(ValidationError, match="winner_id"):
        _event(kind="awarded")
    with pytest.raises(ValidationError, match="bidder_id"):
        _event(kind="bid")
    with pytest.raises(ValidationError):
        _event(ts="2025-01-01T00:00:00")  # no timezone
    with pytest.raises(ValidationError):
        _event(estimate_amount=-1.0, estimate_currency="IDR")


def test_rule_book_has_the_procurement_section() -> None:
    cfg = load_rules().procurement
    assert cfg.min_days("Tender") == 7 and cfg.min_days("selective") == 3
    assert cfg.min_days("Pengadaan Langsung") is None
    assert cfg.competitive("TENDER") and not cfg.competitive("E-Purchasing")
    assert slug("Kementerian Ekonomi Kreatif/Badan Ekonomi Kreatif") == (
        "kementerian-ekonomi-kreatif-badan-ekonomi-kreatif"
    )
