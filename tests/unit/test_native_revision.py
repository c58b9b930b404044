"""chdb's Native output rewritten for a client's protocol revision, read as clickhouse-go reads
it. The Native bytes are chdb's own, made in a process of its own (chdb opens one engine per
process); the expected values are written here, not read back from chdb."""

from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.native_revision import (
    NativeUnsupported,
    block_info,
    for_revision,
    parse_type,
    split_args,
)
from tests.clickhouse_go_reader import CLIENT_TCP_PROTOCOL_VERSION, GoDecodeError, GoReader

JKT = ZoneInfo("Asia/Jakarta")
# One column each: (expression, the value clickhouse-go's reader must find).
CASES: list[tuple[str, Any]] = [
    ("toUInt8(200)", 200),
    ("toInt16(-300)", -300),
    ("toUInt64(18446744073709551615)", 2**64 - 1),
    ("toInt128('-1267650600228229401496703205376')", -(2**100)),
    ("toUInt256('1606938044258990275541962092341162602522202993782792835301376')", 2**200),
    ("toFloat32(1.5)", 1.5),
    ("toFloat64(-0.25)", -0.25),
    ("true", True),
    ("'Semarang é'", "Semarang é"),
    ("toFixedString('ab', 3)", b"ab\x00"),
    ("toNullable('x')", "x"),
    ("CAST(NULL AS Nullable(Int32))", None),
    ("NULL", None),
    ("toLowCardinality('Tembalang')", "Tembalang"),
    ("CAST(NULL AS LowCardinality(Nullable(String)))", None),
    ("[1, 2, 3]", [1, 2, 3]),
    ("[[1], [], [2, 3]]", [[1], [], [2, 3]]),
    ("[toLowCardinality('a'), toLowCardinality('b')]", ["a", "b"]),
    ("[toNullable(1), NULL]", [1, None]),
    ("[]", []),
    ("map('k', 1, 'l', 2)", {"k": 1, "l": 2}),
    ("map('a', [toNullable(1), NULL])", {"a": [1, None]}),
    ("tuple(1, 'a', [2])", (1, "a", [2])),
    ("CAST((1, 'x') AS Tuple(a UInt8, `b c` LowCardinality(String)))", (1, "x")),
    ("toDate('2026-11-30')", date(2026, 11, 30)),
    ("toDate32('1900-01-02')", date(1900, 1, 2)),
    ("toDateTime('2026-11-30 10:00:00', 'Asia/Jakarta')", datetime(2026, 11, 30, 10, tzinfo=JKT)),
    ("toDateTime('2026-11-30 10:00:00', 'UTC')", datetime(2026, 11, 30, 10, tzinfo=UTC)),
    (
        "toDateTime64('2026-11-30 10:00:00.123', 3, 'Asia/Jakarta')",
        datetime(2026, 11, 30, 10, 0, 0, 123000, tzinfo=JKT),
    ),
    ("toDecimal32('1.5', 2)", Decimal("1.50")),
    ("toDecimal64('-12.345', 3)", Decimal("-12.345")),
    ("toDecimal128('-12345678901234567890.12', 2)", Decimal("-12345678901234567890.12")),
    ("CAST('3.14' AS Decimal(10, 2))", Decimal("3.14")),
    ("CAST('b' AS Enum8('a' = 1, 'b' = 2))", "b"),
    ("CAST('x, y' AS Enum16('x, y' = 1000))", "x, y"),
    (
        "toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0')",
        uuid.UUID("61f0c404-5cb3-11e7-907b-a6006ad3dba0"),
    ),
    ("toIPv4('10.0.0.1')", ipaddress.IPv4Address("10.0.0.1")),
    ("toIPv6('2001:db8::1')", ipaddress.IPv6Address("2001:db8::1")),
]
# Rows of several blocks, mixing the layouts that carry state across a column's bytes.
BLOCKS = (
    "SELECT number AS n, toString(number) AS s, toLowCardinality(toString(number % 2)) AS lc,"
    " if(number = 1, NULL, number) AS maybe, range(number) AS r,"
    " toDateTime64(number, 3, 'Asia/Jakarta') AS t FROM numbers(5) SETTINGS max_block_size = 2"
)
REFUSED = (
    "SELECT sumState(number) AS s FROM numbers(2)",
    "SELECT CAST(1 AS Dynamic) AS d",
    "SELECT CAST(1 AS Variant(UInt8, String)) AS v",
    """SELECT CAST('{"a": 1}' AS JSON) AS j""",
)
POINT = "SELECT CAST((1.5, 2.0) AS Point) AS p, [CAST((0., 1.) AS Point)]::Ring AS ring"
EMPTY = "SELECT 1 AS x WHERE 0"
PROBE = "SELECT 1 AS check"  # clickhouse-connect's client_protocol_version probe

_CHDB_MAIN = """
import base64, json, sys
import chdb
conn = chdb.connect(":memory:")
out = {q: base64.b64encode(conn.query(q, "Native").bytes() or b"").decode() for q in json.loads(sys.argv[1])}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def native() -> dict[str, bytes]:
    queries = [f"SELECT {expr} AS v" for expr, _ in CASES]
    queries += [BLOCKS, *REFUSED, POINT, EMPTY, PROBE, "SELECT 1"]
    done = subprocess.run(
        [sys.executable, "-c", _CHDB_MAIN, json.dumps(queries)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return {q: base64.b64decode(b) for q, b in json.loads(done.stdout).items()}


def read(body: bytes, revision: int) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    reader = GoReader(body, server_tz="UTC")
    names, types, rows = reader.read_all(revision)
    assert reader.pos == len(body)  # every byte read: nothing left over, nothing missing
    return names, types, rows


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_each_type_reads_as_clickhouse_go_reads_it(
    native: dict[str, bytes], expr: str, expected: Any
) -> None:
    raw = native[f"SELECT {expr} AS v"]
    # clickhouse-go reads BlockInfo as two fields, so not a revision >= 54480 (field 3).
    for revision in (CLIENT_TCP_PROTOCOL_VERSION, 54405, 54453, 54479):
        names, types, rows = read(for_revision(raw, revision), revision)
        assert names == ["v"] and rows == [(expected,)], (revision, types, rows)
        assert type(rows[0][0]) is type(expected)
    assert read(raw, 0)[2] == [(expected,)]  # revision 0: chdb's bytes, untouched


def test_blocks_keep_their_rows_and_gain_their_framing(native: dict[str, bytes]) -> None:
    raw = native[BLOCKS]
    body = for_revision(raw, CLIENT_TCP_PROTOCOL_VERSION)
    reader = GoReader(body)
    names, _, rows = reader.read_all(CLIENT_TCP_PROTOCOL_VERSION)
    assert [len(block[0][2]) for block in reader.blocks] == [2, 2, 1]
    assert names == ["n", "s", "lc", "maybe", "r", "t"]
    assert [r[:5] for r in rows] == [
        (i, str(i), str(i % 2), None if i == 1 else i, list(range(i))) for i in range(5)
    ]
    assert [r[5] for r in rows] == [datetime.fromtimestamp(i, JKT) for i in range(5)]
    # 8 bytes of BlockInfo a block, one "no custom serialization" byte a column.
    assert len(body) == len(raw) + 3 * 8 + 3 * 6
    assert for_revision(raw, 0) is raw


def test_the_framing_is_the_servers(native: dict[str, bytes]) -> None:
    # clickhouse-connect takes a server's answer to its probe as these bytes at 8:16
    # (clickhouse_connect/driver/_backend/orchestration.py, protocol version 54405).
    assert for_revision(native[PROBE], 54405)[8:16] == b"\x01\x01\x05check"
    assert block_info(54460) == bytes.fromhex("010002ffffffff00")
    assert block_info(54480) == bytes.fromhex("010002ffffffff030000")
    ping = for_revision(native["SELECT 1"], CLIENT_TCP_PROTOCOL_VERSION)
    assert ping == bytes.fromhex("010002ffffffff00") + b"\x01\x01\x011\x05UInt8\x00\x01"
    assert read(ping, CLIENT_TCP_PROTOCOL_VERSION)[0] == ["1"]  # what clickhouse-go's ping checks
    # chdb's own bytes, read as clickhouse-go reads them: the failure this module is for.
    with pytest.raises(GoDecodeError):
        read(native["SELECT 1"], CLIENT_TCP_PROTOCOL_VERSION)
    assert native[EMPTY] == b"" and for_revision(b"", CLIENT_TCP_PROTOCOL_VERSION) == b""


def test_geo_types_are_walked_as_the_types_they_name(native: dict[str, bytes]) -> None:
    raw = native[POINT]
    body = for_revision(raw, CLIENT_TCP_PROTOCOL_VERSION)
    # Point and Ring are written as Tuple(Float64, Float64) and Array of it.
    tuples = raw.replace(b"\x05Point", b"\x17Tuple(Float64, Float64)").replace(
        b"\x04Ring", b"\x1eArray(Tuple(Float64, Float64))"
    )
    assert read(tuples, 0)[2] == [((1.5, 2.0), [(0.0, 1.0)])]
    assert len(body) == len(raw) + 8 + 2
    assert body.endswith(raw[raw.index(b"Ring") + 4 :])


@pytest.mark.parametrize("query", REFUSED)
def test_columns_whose_bytes_depend_on_the_revision_are_refused(
    native: dict[str, bytes], query: str
) -> None:
    with pytest.raises(NativeUnsupported, match="not written in Native"):
        for_revision(native[query], CLIENT_TCP_PROTOCOL_VERSION)


@pytest.mark.parametrize("revision", [1, 54404, 54492, 60000])
def test_revisions_whose_data_differs_are_refused(native: dict[str, bytes], revision: int) -> None:
    with pytest.raises(NativeUnsupported, match=str(revision)):
        for_revision(native["SELECT 1"], revision)


def test_truncated_output_is_refused_not_passed_on(native: dict[str, bytes]) -> None:
    raw = native[BLOCKS]
    for cut in (1, 5, len(raw) // 2, len(raw) - 1):
        with pytest.raises(NativeUnsupported):
            for_revision(raw[:cut], CLIENT_TCP_PROTOCOL_VERSION)


def test_type_names_are_split_as_clickhouse_writes_them() -> None:
    assert split_args("String, Array(Tuple(a UInt8, b String))") == [
        "String",
        "Array(Tuple(a UInt8, b String))",
    ]
    assert split_args("'a, b' = 1, 'c\\'' = 2") == ["'a, b' = 1", "'c\\'' = 2"]
    named = parse_type("Tuple(`x, y` Nullable(String), b DateTime64(3, 'UTC'))")
    assert named.args == ("Nullable(String)", "DateTime64(3, 'UTC')")
    assert parse_type("Nested(a UInt8, b String)").args == ("Tuple(UInt8, String)",)
    assert parse_type("SimpleAggregateFunction(sum, UInt64)").family == "UInt64"
    assert parse_type("MultiPolygon").args == ("Polygon",)
