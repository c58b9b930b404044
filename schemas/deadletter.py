"""Dead letters: what a rejected event carries besides its original bytes."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ValidationError


class Reason(StrEnum):
    INVALID_JSON = "invalid_json"
    SCHEMA = "schema_violation"
    OUTSIDE_SERVICE_AREA = "outside_service_area"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNKNOWN_ENTITY = "unknown_entity"
    IMPOSSIBLE_VALUE = "impossible_value"
    ILLEGAL_TRANSITION = "illegal_transition"  # a lifecycle step its state does not allow
    FORBIDDEN = "forbidden"  # a command or move its sender's department may not make
    LATE = "late"  # past the correction horizon: its window can no longer change
    PROCESSING_ERROR = "processing_error"  # our own code failed on this item


def validation_detail(exc: ValidationError) -> str:
    """Where and why a model refused an input, never the input itself: pydantic's own text
    quotes the refused value (``input_value=...``), which may be a citizen's phone number,
    and dead letters are served to staff and kept for months."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class DeadLetter(BaseModel):
    """The headers of a record on the dead-letter topic; the value is the original bytes."""

    reason: Reason
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    item_index: int | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        out = [
            ("reason", self.reason.value.encode()),
            ("detail", self.detail.encode()[:2000]),
            ("source.topic", self.source_topic.encode()),
            ("source.partition", str(self.source_partition).encode()),
            ("source.offset", str(self.source_offset).encode()),
        ]
        if self.item_index is not None:
            out.append(("item.index", str(self.item_index).encode()))
        return out


# Dead letters from these topics or connectors may carry personal data (reporters'
# contacts): the ClickHouse dead-letter table keeps their reason and place, not their bytes.
WITHHELD_SOURCES = frozenset({"reports.contacts", "report-import"})
