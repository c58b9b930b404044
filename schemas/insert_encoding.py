"""Rows to the body of one ClickHouse insert, encoded in C.

clickhouse-connect builds its Native insert blocks in Python, value by value, on the
warehouse thread; at a busy worker's rates that thread spends more time holding the GIL
than the stream does handling the batch. msgspec writes the same rows as one
``JSONCompactColumns`` document without the GIL-bound Python loop, and ClickHouse (or
chdb, which releases the GIL while it parses) turns it into the same stored values:
times as RFC 3339 text (read with ``best_effort``), booleans as numbers, ``None`` as NULL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

FORMAT = "JSONCompactColumns"
SETTINGS = {"date_time_input_format": "best_effort"}
_encoder = msgspec.json.Encoder()


def json_columns(rows: Sequence[Sequence[Any]]) -> bytes | None:
    """The rows as one JSONCompactColumns body, or None when JSON cannot carry them as
    they are: raw bytes (JSON would turn them into base64 text) or types msgspec does not
    know. Floats that are not finite have no JSON form either; the caller keeps the other
    path for them (msgspec would write null)."""
    columns = list(zip(*rows, strict=True))
    for column in columns:
        first = next((v for v in column if v is not None), None)
        if isinstance(first, bytes | bytearray | memoryview):
            return None
        if isinstance(first, float) and not all(_finite(v) for v in column):
            return None
    try:
        return _encoder.encode(columns)
    except (TypeError, msgspec.EncodeError):
        return None


def _finite(value: Any) -> bool:
    return value is None or value - value == 0.0
