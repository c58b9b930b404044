"""Rows to the body of one ClickHouse insert, encoded in C.

clickhouse-connect builds its Native insert blocks in Python, value by value, on the
warehouse thread; at a busy worker's rates that thread spends more time holding the GIL
than the stream does handling the batch. msgspec writes the same rows as one
``JSONCompactEachRow`` body in a single C call, and ClickHouse (or
chdb, which releases the GIL while it parses) turns it into the same stored values:
times as RFC 3339 text or as seconds since the epoch (both read with ``best_effort``),
booleans as numbers, ``None`` as NULL. Hot rows carry times as seconds (:func:`stored_time`):
msgspec writes a float several times faster than a datetime.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import modf
from operator import itemgetter
from typing import Any

import msgspec

FORMAT = "JSONCompactEachRow"
SETTINGS = {"date_time_input_format": "best_effort"}
_encoder = msgspec.json.Encoder()


# ClickHouse reads an integer out of a column's range from JSON by wrapping it (2**32
# into a UInt32 is 0); clickhouse-connect refuses it. Such rows take clickhouse-connect's
# path, so they are refused with ClickHouse's reason instead of stored wrong.
_INT_RANGES = {
    f"{sign}Int{bits}": ((0, 2**bits - 1) if sign else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    for sign in ("U", "")
    for bits in (8, 16, 32, 64, 128, 256)
}


def int_bounds(types: Sequence[str]) -> list[tuple[int, int, int]]:
    """(index, lowest, highest) of each integer column, from ClickHouse type names."""
    out = []
    for i, name in enumerate(types):
        for wrapper in ("Nullable(", "LowCardinality("):
            if name.startswith(wrapper):
                name = name[len(wrapper) : -1]
        if name in _INT_RANGES:
            out.append((i, *_INT_RANGES[name]))
    return out


def json_rows(
    rows: Sequence[Sequence[Any]], ints: Sequence[tuple[int, int, int]] = ()
) -> bytes | None:
    """The rows as a JSONCompactEachRow body (arrays separated by commas, which ClickHouse
    reads as rows), or None when JSON cannot carry them as they are: raw bytes (JSON would
    turn them into base64 text; a column is judged by its first value, so a table whose
    column may hold bytes among text is declared in RAW_BYTES_TABLES instead), an integer
    outside its column's range (``ints``, from :func:`int_bounds`), or types msgspec does
    not know. A float that is not finite has no JSON form: msgspec writes null, stored as
    NULL (the column's default where it is not Nullable)."""
    if not rows:
        return b""
    first = rows[0]
    for i, value in enumerate(first):
        if value is None:  # a Nullable column: its type shows at its first value
            value = next((row[i] for row in rows if row[i] is not None), None)
        if isinstance(value, bytes | bytearray | memoryview):
            return None
    for i, lowest, highest in ints:
        if not _within(rows, itemgetter(i), lowest, highest):
            return None
    try:
        return _encoder.encode(rows)[1:-1]
    except (TypeError, msgspec.EncodeError):
        return None


def _within(rows: Sequence[Sequence[Any]], value_of: Any, lowest: int, highest: int) -> bool:
    """Every value of a column in range (NULLs aside), in C for a column without NULLs.
    A value that is not a number is left to clickhouse-connect's path (False)."""
    try:
        return bool(lowest <= min(map(value_of, rows)) and max(map(value_of, rows)) <= highest)
    except TypeError:  # NULLs among the numbers, or not numbers
        pass
    try:
        present = [v for v in map(value_of, rows) if v is not None]
        return not present or bool(lowest <= min(present) and max(present) <= highest)
    except TypeError:
        return False


def stored_time(ts: float) -> float:
    """A time in seconds as DateTime64(3) keeps it, written as a number JSON carries
    exactly: the instant rounded to the microsecond (half to even, as ``datetime`` does),
    then cut to the millisecond (as clickhouse-connect writes a datetime). Rows written
    either way get the same key, so a replay across an upgrade replaces, not duplicates."""
    if type(ts) is float and ts.is_integer():
        return ts + 0.0  # whole seconds, what most feeds send, are kept as they are (-0.0 too)
    frac, whole = modf(ts)
    us = round(frac * 1_000_000)
    return (int(whole) * 1000 + us // 1000) / 1000
