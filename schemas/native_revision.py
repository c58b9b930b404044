"""ClickHouse's Native format as a server writes it for a client's protocol revision.

A client of the HTTP interface may send ``client_protocol_version=<revision>``; a server then
writes ``Native`` the way its TCP protocol does for that revision (ClickHouse
src/Server/HTTPHandler.cpp sets the context's client protocol version, FormatFactory passes it
to NativeWriter). clickhouse-go over HTTP always sends it (54460 in v2.47) and reads every
block with the framing of a revision >= 54454 (conn_http.go readData, lib/proto/block.go
Decode). chdb has no client, so it writes revision 0. The two differ only in framing:

- revision > 0: each block starts with BlockInfo, field-tagged: 1 is_overflows (UInt8), 2
  bucket_num (Int32), and from 54480 on 3 out_of_order_buckets (VarUInt count, Int32 each),
  then 0 (src/Core/BlockInfo.cpp);
- revision >= 54454: after each column's type name, one byte "has custom serialization" (0:
  chdb's revision-0 data is always the default, dense serialization) (src/Formats/NativeWriter.cpp).

Column data is the same bytes, so this copies chdb's output and adds the framing. To find
where a column ends it walks the data by type. Revisions whose data itself differs are refused:
below 54405 (LowCardinality stripped, DateTime without its zone), from 54492 on (String with a
separate size stream), and Dynamic/JSON/Object/Variant/AggregateFunction columns, whose
layout is revision dependent or not walked here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MIN_REVISION_WITH_LOW_CARDINALITY = 54405
MIN_REVISION_WITH_CUSTOM_SERIALIZATION = 54454
MIN_REVISION_WITH_OUT_OF_ORDER_BUCKETS = 54480
MIN_REVISION_WITH_STRING_SIZE_STREAM = 54492

FIXED_SIZES: dict[str, int] = {
    "UInt8": 1, "Int8": 1, "Bool": 1, "Enum8": 1, "Nothing": 1,
    "UInt16": 2, "Int16": 2, "Date": 2, "Enum16": 2, "BFloat16": 2,
    "UInt32": 4, "Int32": 4, "Float32": 4, "Date32": 4, "DateTime": 4, "IPv4": 4, "Time": 4,
    "Decimal32": 4,
    "UInt64": 8, "Int64": 8, "Float64": 8, "DateTime64": 8, "Time64": 8, "Decimal64": 8,
    "UInt128": 16, "Int128": 16, "UUID": 16, "IPv6": 16, "Decimal128": 16,
    "UInt256": 32, "Int256": 32, "Decimal256": 32,
}  # fmt: skip
# Geo types are names for nested types with the same bytes.
ALIASES: dict[str, str] = {
    "Point": "Tuple(Float64, Float64)",
    "Ring": "Array(Point)",
    "LineString": "Array(Point)",
    "MultiLineString": "Array(LineString)",
    "Polygon": "Array(Ring)",
    "MultiPolygon": "Array(Polygon)",
}
UNWALKED = ("Dynamic", "JSON", "Object", "Variant", "AggregateFunction")
# SerializationLowCardinality's index flags.
_KEY_TYPE_MASK = 0xFF
_NEED_GLOBAL_DICTIONARY = 1 << 8
_HAS_ADDITIONAL_KEYS = 1 << 9


class NativeUnsupported(Exception):
    """The revision or a column type cannot be written here as a server would."""


@dataclass(frozen=True)
class ChType:
    family: str
    args: tuple[str, ...] = ()

    def nested(self) -> list[ChType]:
        return [parse_type(arg) for arg in self.args]


def split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments, ignoring commas in brackets and quotes."""
    parts: list[str] = []
    depth, quote, start, i = 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    tail = text[start:].strip()
    if tail or parts:
        parts.append(tail)
    return parts


def _element_type(element: str) -> str:
    """A tuple element's type without its name (``a UInt8``, ```b c` String``)."""
    if element.startswith("`"):
        end = 1
        while end < len(element) and element[end] != "`":
            end += 2 if element[end] == "\\" else 1
        return element[end + 1 :].strip()
    paren = element.find("(")
    head = element if paren < 0 else element[:paren]
    return element.split(" ", 1)[1].strip() if " " in head.strip() else element


def parse_type(name: str) -> ChType:
    name = name.strip()
    if name in ALIASES:
        return parse_type(ALIASES[name])
    paren = name.find("(")
    if paren < 0:
        return ChType(name)
    if not name.endswith(")"):
        raise NativeUnsupported(f"cannot read the type name {name!r}")
    family, inner = name[:paren].strip(), name[paren + 1 : -1]
    args = split_args(inner)
    if family in ("Tuple", "Nested"):
        args = [_element_type(a) for a in args]
    if family == "Nested":
        return ChType("Array", (f"Tuple({', '.join(args)})",))
    if family == "SimpleAggregateFunction":
        return parse_type(args[-1])
    return ChType(family, tuple(args))


class _Walker:
    """Moves over one column's bytes in chdb's revision-0 Native output."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, size: int) -> int:
        start = self.pos
        self.pos += size
        if self.pos > len(self.data):
            raise NativeUnsupported("chdb's Native output ended inside a column")
        return start

    def varint(self) -> int:
        shift = value = 0
        while True:
            byte = self.data[self.take(1)]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise NativeUnsupported("a VarUInt in chdb's Native output is too long")

    def uint64(self) -> int:
        value: int = struct.unpack_from("<Q", self.data, self.take(8))[0]
        return value

    def string(self) -> bytes:
        size = self.varint()
        start = self.take(size)
        return self.data[start : start + size]

    def prefix(self, t: ChType) -> None:
        """The serialization state prefix, written once before a column's data."""
        if t.family == "LowCardinality":
            self.uint64()  # keys serialization version
        elif t.family in ("Array", "Nullable", "Tuple", "Map"):
            for sub in t.nested():
                self.prefix(sub)

    def column(self, t: ChType, rows: int) -> None:
        if rows == 0:
            return  # every serialization writes nothing for no rows
        family = t.family
        if family in FIXED_SIZES:
            self.take(rows * FIXED_SIZES[family])
        elif family == "Decimal":
            self.take(rows * _decimal_size(int(t.args[0])))
        elif family.startswith("Interval"):
            self.take(rows * 8)
        elif family == "String":
            for _ in range(rows):
                self.take(self.varint())
        elif family == "FixedString":
            self.take(rows * int(t.args[0]))
        elif family == "Nullable":
            self.take(rows)
            self.column(t.nested()[0], rows)
        elif family in ("Array", "Map"):
            start = self.take(rows * 8)
            total: int = struct.unpack_from("<Q", self.data, start + (rows - 1) * 8)[0]
            inner = t.nested()[0] if family == "Array" else ChType("Tuple", t.args)
            self.column(inner, total)
        elif family == "Tuple":
            for sub in t.nested():
                self.column(sub, rows)
        else:  # LowCardinality: check_type let nothing else through
            self.low_cardinality(t.nested()[0], rows)

    def low_cardinality(self, values: ChType, rows: int) -> None:
        dictionary = values.nested()[0] if values.family == "Nullable" else values
        while rows > 0:
            flags = self.uint64()
            if flags & _NEED_GLOBAL_DICTIONARY or not flags & _HAS_ADDITIONAL_KEYS:
                raise NativeUnsupported("a LowCardinality column with a shared dictionary")
            self.column(dictionary, self.uint64())
            indexes = self.uint64()
            self.take(indexes * (1 << (flags & _KEY_TYPE_MASK)))
            if indexes == 0:
                raise NativeUnsupported("a LowCardinality chunk without rows")
            rows -= indexes


def _decimal_size(precision: int) -> int:
    return 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32


def check_type(t: ChType) -> None:
    """Refuse a type whose bytes are not walked here (or differ by revision)."""
    family = t.family
    if family in ("Nullable", "LowCardinality", "Array", "Map", "Tuple"):
        for sub in t.nested():
            check_type(sub)
    elif family.startswith(UNWALKED):
        raise NativeUnsupported(
            f"{family} columns are not written in Native for a client_protocol_version here; "
            "ask for another format (e.g. RowBinaryWithNamesAndTypes) or cast the column"
        )
    elif not (
        family in FIXED_SIZES
        or family in ("Decimal", "String", "FixedString")
        or family.startswith("Interval")
    ):
        raise NativeUnsupported(f"the type {family} is not known here")


def check_revision(revision: int) -> None:
    if revision and not (
        MIN_REVISION_WITH_LOW_CARDINALITY <= revision < MIN_REVISION_WITH_STRING_SIZE_STREAM
    ):
        raise NativeUnsupported(
            f"Native for client_protocol_version {revision} is not written here: revisions "
            f"{MIN_REVISION_WITH_LOW_CARDINALITY} to {MIN_REVISION_WITH_STRING_SIZE_STREAM - 1}"
            " (or none, for revision 0) are"
        )


def block_info(revision: int) -> bytes:
    """BlockInfo of a result block: not overflows, bucket -1, no out-of-order buckets."""
    info = b"\x01\x00\x02" + struct.pack("<i", -1)
    if revision >= MIN_REVISION_WITH_OUT_OF_ORDER_BUCKETS:
        info += b"\x03\x00"
    return info + b"\x00"


def for_revision(native: bytes, revision: int) -> bytes:
    """chdb's revision-0 Native output as a server writes it for ``revision``."""
    check_revision(revision)
    if revision == 0:
        return native
    info = block_info(revision)
    custom = b"\x00" if revision >= MIN_REVISION_WITH_CUSTOM_SERIALIZATION else b""
    out = bytearray()
    walk = _Walker(native, 0)
    while walk.pos < len(native):
        out += info
        start = walk.pos
        columns, rows = walk.varint(), walk.varint()
        out += native[start : walk.pos]
        for _ in range(columns):
            start = walk.pos
            walk.string()
            kind = parse_type(walk.string().decode("utf-8", "replace"))
            check_type(kind)
            out += native[start : walk.pos]
            out += custom
            start = walk.pos
            if rows:
                walk.prefix(kind)
                walk.column(kind, rows)
            out += native[start : walk.pos]
    return bytes(out)
