"""A Native reader that reads blocks the way clickhouse-go v2 does over HTTP, for tests.

Written from clickhouse-go v2.47.0 (the version grafana-clickhouse-datasource pins in go.mod):
lib/proto/block.go ``Block.Decode`` and ``decodeBlockInfo``; lib/column/{lowcardinality,
array,map,tuple,nullable}.go ``Decode``/``ReadStatePrefix``; the fixed-width columns decode
with ch-go's ``DecodeColumn`` (little-endian values, ``rows`` of them). What matters here is
that it reads exactly what the driver reads and fails where the driver fails:

- revision > 0: BlockInfo read as the fixed sequence UVarInt, Bool, UVarInt, Int32, UVarInt
  (the driver does not read field numbers, so a field 3 would break it);
- revision >= 54454: a Bool after the type name; true is an error ("custom serialization ...
  not supported by clickhouse-go driver");
- rows == 0: no state prefix and no data.

Values come out as the Python types clickhouse-connect gives for the same columns, so the two
can be compared.
"""

from __future__ import annotations

import ipaddress
import struct
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION = 54454  # lib/proto/const.go
CLIENT_TCP_PROTOCOL_VERSION = 54460  # client_info.go: proto.DBMS_TCP_PROTOCOL_VERSION
DECIMALS = {"Decimal32": 4, "Decimal64": 8, "Decimal128": 16, "Decimal256": 32}
PRECISIONS = ((9, 4), (18, 8), (38, 16), (76, 32))  # Decimal(P, S): digits to bytes
INTS = {f"{s}Int{b}": (b // 8, s == "") for b in (8, 16, 32, 64, 128, 256) for s in ("", "U")}


class GoDecodeError(Exception):
    """Where clickhouse-go would return an error from Block.Decode."""


def _split(inner: str) -> list[str]:
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(inner):
        if quote:
            quote = "" if ch == quote and inner[i - 1] != "\\" else quote
        elif ch in "'`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
    parts.append(inner[start:].strip())
    return parts


def _family(t: str) -> tuple[str, list[str]]:
    if "(" not in t:
        return t, []
    at = t.index("(")
    return t[:at], _split(t[at + 1 : -1])


@dataclass
class GoReader:
    data: bytes
    server_tz: str = "UTC"
    pos: int = 0
    blocks: list[list[tuple[str, str, list[Any]]]] = field(default_factory=list)

    def read(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise GoDecodeError("unexpected EOF")
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.read(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def uint64(self) -> int:
        return int(struct.unpack("<Q", self.read(8))[0])

    def str_(self) -> str:
        return self.read(self.uvarint()).decode("utf-8", "surrogateescape")  # Go: any bytes

    def decode_block(self, revision: int) -> list[tuple[str, str, list[Any]]]:
        if revision > 0:  # decodeBlockInfo
            self.uvarint(), self.read(1), self.uvarint(), self.read(4), self.uvarint()
        num_cols, num_rows = self.uvarint(), self.uvarint()
        block = []
        for _ in range(num_cols):
            name, ch_type = self.str_(), self.str_()
            if revision >= DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION and self.read(1) != b"\x00":
                raise GoDecodeError(f"custom serialization for column {name}")
            values: list[Any] = []
            if num_rows != 0:
                self.state_prefix(ch_type)
                values = self.column(ch_type, num_rows)
            block.append((name, ch_type, values))
        return block

    def read_all(self, revision: int) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        """Every block until the body ends, as the driver's rows iterate them."""
        while self.pos < len(self.data):
            self.blocks.append(self.decode_block(revision))
        if not self.blocks:
            return [], [], []
        names = [c[0] for c in self.blocks[0]]
        types = [c[1] for c in self.blocks[0]]
        rows: list[tuple[Any, ...]] = []
        for block in self.blocks:
            rows.extend(zip(*(c[2] for c in block), strict=True))
        return names, types, rows

    def state_prefix(self, t: str) -> None:
        family, args = _family(t)
        if family == "LowCardinality":
            if self.uint64() != 1:  # sharedDictionariesWithAdditionalKeys
                raise GoDecodeError("invalid key serialization version value")
        elif family in ("Array", "Nullable"):
            self.state_prefix(args[0])
        elif family == "Map":
            self.state_prefix(args[0])
            self.state_prefix(args[1])
        elif family == "Tuple":
            for arg in args:
                self.state_prefix(_element(arg))

    def column(self, t: str, rows: int) -> list[Any]:
        family, args = _family(t)
        if family == "Nullable":
            nulls = self.read(rows)
            base = self.column(args[0], rows)
            return [None if n else v for n, v in zip(nulls, base, strict=True)]
        if family == "Array":
            offsets = [self.uint64() for _ in range(rows)]
            values = self.column(args[0], offsets[-1] if offsets else 0)
            return [values[a:b] for a, b in zip([0, *offsets], offsets, strict=False)]
        if family == "Map":
            offsets = [self.uint64() for _ in range(rows)]
            total = offsets[-1] if offsets else 0
            keys, vals = self.column(args[0], total), self.column(args[1], total)
            return [
                dict(zip(keys[a:b], vals[a:b], strict=True))
                for a, b in zip([0, *offsets], offsets, strict=False)
            ]
        if family == "Tuple":
            columns = [self.column(_element(arg), rows) for arg in args]
            return list(zip(*columns, strict=True))
        if family == "LowCardinality":
            return self.low_cardinality(args[0], rows)
        return [self.scalar(family, args) for _ in range(rows)]

    def low_cardinality(self, t: str, rows: int) -> list[Any]:
        flags = self.uint64()
        key = flags & 0xFF
        if key > 3:
            raise GoDecodeError("invalid index serialization version value")
        if not flags & (1 << 9):
            raise GoDecodeError("additional keys bit is missing")
        nullable = t.startswith("Nullable(")
        index = self.column(t[9:-1] if nullable else t, struct.unpack("<q", self.read(8))[0])
        count = struct.unpack("<q", self.read(8))[0]
        size = 1 << key
        keys = [int.from_bytes(self.read(size), "little") for _ in range(count)]
        if count != rows:
            raise GoDecodeError("LowCardinality keys do not match the rows")
        return [None if nullable and k == 0 else index[k] for k in keys]

    def scalar(self, family: str, args: list[str]) -> Any:
        if family in INTS:
            size, signed = INTS[family]
            return int.from_bytes(self.read(size), "little", signed=signed)
        if family in ("Float32", "Float64"):
            fmt = "<f" if family == "Float32" else "<d"
            return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]
        if family == "Bool":
            return self.read(1) != b"\x00"
        if family == "String":
            return self.str_()
        if family == "FixedString":
            return self.read(int(args[0]))
        if family in ("Date", "Date32"):
            size = 2 if family == "Date" else 4
            days = int.from_bytes(self.read(size), "little", signed=family == "Date32")
            return date(1970, 1, 1) + timedelta(days=days)
        if family == "DateTime":
            zone = args[0].strip("'") if args else self.server_tz
            seconds = int.from_bytes(self.read(4), "little")
            return datetime.fromtimestamp(seconds, UTC).astimezone(ZoneInfo(zone))
        if family == "DateTime64":
            zone = args[1].strip(" '") if len(args) > 1 else self.server_tz
            ticks = int.from_bytes(self.read(8), "little", signed=True)
            micros = ticks * 10**6 // 10 ** int(args[0])
            moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
            return moment.astimezone(ZoneInfo(zone))
        if family.startswith("Decimal"):
            digits = int(args[0]) if family == "Decimal" else 0
            size = DECIMALS.get(family) or next(s for p, s in PRECISIONS if digits <= p)
            scale = int(args[-1])
            raw = int.from_bytes(self.read(size), "little", signed=True)
            return Decimal(raw).scaleb(-scale)
        if family in ("Enum8", "Enum16"):
            raw = int.from_bytes(self.read(1 if family == "Enum8" else 2), "little", signed=True)
            names = {int(v): k.strip().strip("'") for k, _, v in (a.rpartition("=") for a in args)}
            return names[raw]
        if family == "UUID":
            halves = self.read(16)  # two little-endian UInt64s, the high one first
            return uuid.UUID(bytes=halves[:8][::-1] + halves[8:][::-1])
        if family == "IPv4":
            return ipaddress.IPv4Address(int.from_bytes(self.read(4), "little"))
        if family == "IPv6":
            return ipaddress.IPv6Address(self.read(16))
        if family == "Nothing":
            self.read(1)
            return None
        raise GoDecodeError(f"unsupported column type {family}")


def _element(element: str) -> str:
    """A named tuple element's type, as clickhouse-go's Tuple.parse strips the name."""
    if element.startswith("`"):
        return element[element.index("`", 1) + 1 :].strip()
    head = element.split("(", 1)[0]
    return element.split(" ", 1)[1].strip() if " " in head.strip() else element
