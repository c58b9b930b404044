"""Replay of staple-food price tables as Bapanas (Panel Harga Pangan) and PIHPS (Bank
Indonesia's Pusat Informasi Harga Pangan Strategis, bi.go.id/hargapangan) publish them.

The layout is read from the content, not from the file's name:

* **long**: a price per row under a header naming the day (``Timestamp``, ``Tanggal`` or
  ``Date``), the commodity (``Komoditas``) and the price (``Harga``), optionally the unit
  (``Satuan``) and Bapanas' commodity ``ID``; other columns are ignored (Bapanas' tables).
* **wide**: PIHPS' "Tabel Harga" export, a row per commodity and grade (``No``,
  ``Komoditas (Rp)``) and a column per day (``01/ 01/ 2026``), with title rows above it
  or not. A group row ("Beras", numbered I, II, ...) is the average of the grades under
  it ("Beras Kualitas Medium I", numbered 1, 2, ...): it is skipped when they are there.
* **transposed**: the same table turned round, a row per day and a column per commodity
  (what a spreadsheet or pandas makes of the export).

These come as .xlsx workbooks (every sheet is read), as CSV (comma, semicolon or tab; any
encoding) or as JSON (an array of long rows, or PIHPS' grid ``{"data": [{"name",
"level", "DD/MM/YYYY": price}, ...]}``), gzip-compressed or not. A price may be written
"13650", "13,650" (PIHPS), "13.650" or "13.650,00" (Indonesian) or be a spreadsheet
number: rupiah prices have no thousandths, so one separator followed by three digits
groups thousands. "-", an empty cell or 0 means "not collected that day", not "free": it
is skipped and counted (``sitroom_connector_prices_missing_total``).

The tables carry no market: one is given for the whole file. They give a day, not a time:
an observation is stamped at the start of its market day in the room's time zone
(SITROOM_TIMEZONE), so the day's prices are never "in the future" on that day, whenever
they are replayed. A record that cannot become an observation is dead-lettered with its
file and line (or sheet and cell) and the rest is imported; the names that are not in
``schemas/commodities.toml`` are listed with their counts in one line at the end."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import math
import re
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter as MetricCounter
from pydantic import BaseModel, ValidationError

from connectors.base import Source, SourceError
from connectors.publisher import KafkaPublisher
from connectors.textfile import UnreadableFile, decode
from schemas.catalog import PRICE_OBSERVATIONS
from schemas.prices import (
    Commodity,
    CommodityRegistry,
    PriceObservation,
    name_key,
    normalize_unit,
)

log = logging.getLogger(__name__)

MISSING = MetricCounter(
    "sitroom_connector_prices_missing_total",
    "Price rows skipped because the source marks the price missing (0, '-' or empty)",
    ["connector"],
)
UNITS = ("kg", "liter")
# Header cells, compared case-insensitively; "(Rp)"-like suffixes are allowed on names.
_DAY = re.compile(r"^(timestamp|tanggal|date|tgl)$")
_NAME = re.compile(r"^(komoditas|commodity|nama komoditas|nama barang|name|nama)(\s*\(.*\))?$")
_PRICE = re.compile(r"^(harga|price)(\s*\(.*\))?$")
_UNIT = re.compile(r"^(satuan|unit)$")
_NO = re.compile(r"^no\.?$")
_ROMAN = re.compile(r"^[ivxlc]+\.?$", re.IGNORECASE)
_WITH_UNIT = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")
# Dates as PIHPS ("01/ 01/ 2026"), spreadsheets ("1/1/2026", "01-01-2026", "01.01.2026"),
# ISO ("2026-01-01", with a time or not) and in words ("1 Januari 2026", "01-Jan-2026").
_YMD = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?$")
_DMY = re.compile(r"^(\d{1,2})\s*([/.-])\s*(\d{1,2})\s*\2\s*(\d{4})$")
_WORDS = re.compile(r"^(\d{1,2})[\s-]+([a-z]+)\.?[\s-]+(\d{4})$", re.IGNORECASE)
MONTHS = {
    "jan": 1, "januari": 1, "january": 1, "feb": 2, "peb": 2, "februari": 2, "pebruari": 2,
    "february": 2, "mar": 3, "maret": 3, "march": 3, "apr": 4, "april": 4, "mei": 5, "may": 5,
    "jun": 6, "juni": 6, "june": 6, "jul": 7, "juli": 7, "july": 7, "agu": 8, "agt": 8,
    "ags": 8, "agustus": 8, "aug": 8, "august": 8, "sep": 9, "sept": 9, "september": 9,
    "okt": 10, "oktober": 10, "oct": 10, "october": 10, "nov": 11, "nop": 11, "nopember": 11,
    "november": 11, "des": 12, "desember": 12, "dec": 12, "december": 12,
}  # fmt: skip
_CURRENCY = re.compile(r"^(rp\.?|idr)|[.,]-$", re.IGNORECASE)
_NUMBER = re.compile(r"([+-]?)(\d[\d.,]*)")
_MISSING_TEXT = {"", "-", "\u2013", "\u2014", "0", "n/a", "na", "nan", "null", "none", "tidak ada"}
HEADER_SEARCH_ROWS = 40  # title rows above the table
# A table whose names are regions is PIHPS' other export, one commodity across regions.
_REGION = re.compile(r"^(semua provinsi|provinsi |kota |kab\.? |kabupaten |dki |di |jawa |sumatera |kalimantan |sulawesi |nusa tenggara |papua|maluku|aceh|bali|banten|bengkulu|gorontalo|jambi|lampung|riau|kepulauan )")  # fmt: skip


class RowError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class Cell:
    """One price of a record: its day (or why the day is not one), the value as written."""

    day: date | RowError
    value: Any
    where: str


@dataclass
class Record:
    """A line of a long table (one cell), or a commodity's row (wide) or column
    (transposed) with a cell per day."""

    where: str
    raw: bytes
    name: str
    cells: list[Cell]
    unit: str | None = None  # as written in the table (Satuan), when it says
    group: bool | None = None  # the table marks it a group row (No "I", level 1)
    bapanas_id: str = ""
    error: RowError | None = None  # unreadable as a whole (field count, encoding)


@dataclass
class Parsed:
    records: list[Record]
    layout: str  # long, wide, transposed
    where: str


@dataclass
class Grid:
    """Cells of a sheet or CSV file, with where each row came from."""

    rows: list[list[Any]]
    where: Callable[[int, int | None], str]
    raw: Callable[[int], bytes]
    label: str
    strict_width: bool = False  # CSV: a long row with a field too many or too few is broken


@dataclass
class ReplayStats:
    published: int = 0
    missing: int = 0
    rejected: int = 0
    grouped: int = 0  # prices of PIHPS group rows, skipped
    duplicates: int = 0  # the same price for the same commodity and day again in a file
    unknown: Counter[str] = field(default_factory=Counter)  # name → records dead-lettered
    groups: Counter[str] = field(default_factory=Counter)  # group name → prices skipped


def parse_price(value: Any) -> float | None:
    """Rupiah per unit; None when the table marks it missing; ValueError if not a number.

    "13650", "13,650" and "13.650" are 13650 (one separator before three digits groups
    thousands: rupiah prices have no thousandths); "13.650,00" and "13,650.00" are too
    (the last separator is the decimal one); "13650,5" is 13650.5."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return None
        return None if value == 0 else float(value)
    text = str(value).strip()
    if text.isdigit():  # the common case, fast
        return float(text) or None
    text = _CURRENCY.sub("", text.replace("\u00a0", "").replace(" ", ""))  # "Rp 15.000,-"
    if text.casefold() in _MISSING_TEXT:
        return None
    m = _NUMBER.fullmatch(text)
    if m is None or text[-1] in ".,":
        raise ValueError("not a number")
    sign, digits = m[1], m[2]
    seps = {c for c in digits if c in ".,"}
    if len(seps) == 2:  # the last separator is the decimal one
        decimal = "," if digits.rfind(",") > digits.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        whole, frac = digits.rsplit(decimal, 1)
        if decimal in whole or not _grouped(whole, thousands):
            raise ValueError("not a number")
        number = f"{whole.replace(thousands, '')}.{frac}"
    elif len(seps) == 1:
        sep = seps.pop()
        parts = digits.split(sep)
        if len(parts) > 2 or len(parts[1]) == 3:  # thousands: 13.650, 1,250,000
            if not _grouped(digits, sep):
                raise ValueError("not a number")
            number = digits.replace(sep, "")
        else:  # a decimal: 13650,5 or 13650.00
            number = f"{parts[0]}.{parts[1]}"
    else:
        number = digits
    price = float(number)
    if price == 0:
        return None
    return -price if sign == "-" else price


def _grouped(text: str, sep: str) -> bool:
    """Whether ``text`` is digits grouped by three with ``sep`` (or not grouped at all)."""
    first, *rest = text.split(sep)
    return not rest or (1 <= len(first) <= 3 and all(len(p) == 3 for p in rest))


def month_first(values: Iterable[Any]) -> bool:
    """Whether the table's a/b/yyyy dates are month/day (a US spreadsheet) rather than
    PIHPS' day/month: only when some b is above 12 and no a is."""
    days = months = False
    for value in values:
        if isinstance(value, str) and (m := _DMY.match(value.strip())):
            days |= int(m[1]) > 12
            months |= int(m[3]) > 12
    return months and not days


def parse_day(value: Any, mdy: bool = False) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if m := _YMD.match(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DMY.match(text):
            a, b = int(m[1]), int(m[3])
            return date(int(m[4]), a, b) if mdy else date(int(m[4]), b, a)
        if (m := _WORDS.match(text)) and m[2].casefold() in MONTHS:
            return date(int(m[3]), MONTHS[m[2].casefold()], int(m[1]))
    except ValueError:
        return None
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _at(row: Sequence[Any], i: int | None) -> Any:
    return row[i] if i is not None and i < len(row) else None


def _csv_bytes(cells: Sequence[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([_text(c) for c in cells])
    return out.getvalue().encode()


class PriceReplay(Source):
    name = "price-replay"
    finite = True
    topic = PRICE_OBSERVATIONS

    def __init__(self, files: Sequence[Path], market: str, commodities: CommodityRegistry,
                 source: str = "bapanas", batch_size: int = 200,
                 zone: tzinfo | None = None) -> None:  # fmt: skip
        self.files = list(files)
        self.market = market
        self.commodities = commodities
        self.by_bapanas_id = {c.bapanas_id: c for c in commodities.commodities if c.bapanas_id}
        self.group_names = commodities.groups()
        self.source = source
        self.batch_size = batch_size
        self.zone = zone or ZoneInfo("Asia/Jakarta")
        self.stats = ReplayStats()

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, PriceObservation)
        return event.commodity_id

    # -- reading files ----------------------------------------------------------------------

    def read(self, path: Path) -> list[Parsed]:
        """Every price table in a file, with its layout; SourceError when there is none."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                raise SourceError(f"{path}: a gzip file that does not decompress (cut short?)") from exc  # fmt: skip
        if data[:4] == b"PK\x03\x04":
            grids = self._xlsx(path, data)
        elif data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
            raise SourceError(f"{path}: an Excel 97-2003 (.xls) workbook, which is not read: open it and save it as .xlsx or CSV")  # fmt: skip
        else:
            try:
                text, encoding = decode(data)
            except UnreadableFile as exc:
                raise SourceError(f"{path}: {exc}") from exc
            if encoding not in ("utf-8", "utf-8-sig", "utf_8"):
                log.info(f"{path}: not UTF-8, read as {encoding}", extra={"connector": self.name})  # fmt: skip
            head = text.lstrip("\ufeff \t\r\n")[:1]
            if head in ("[", "{"):
                return [self._json(path, text)]
            if head == "<":
                raise SourceError(f"{path}: an HTML or XML page, not a price table (save the table itself as .xlsx or CSV)")  # fmt: skip
            grids = [self._csv(path, text)]
        found = [p for g in grids if (p := self._grid(g)) is not None]
        if not found:
            first = next((r for g in grids for r in g.rows if any(_text(c) for c in r)), [])
            raise SourceError(
                f"{path}: no price table found: expected a long table (a header with "
                f"Timestamp or Tanggal, Komoditas and Harga) or PIHPS' table (No, Komoditas "
                f"(Rp) and a column per day, e.g. 01/ 01/ 2026); the first row reads "
                f"{[_text(c) for c in first][:6]}"
            )
        return found

    def _xlsx(self, path: Path, data: bytes) -> list[Grid]:
        import openpyxl
        from openpyxl.utils import get_column_letter
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no default style" and the like
                # Not read-only: PIHPS' files carry a stale sheet dimension, with which
                # openpyxl's read-only mode yields almost nothing.
                book = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
            raise SourceError(f"{path}: a ZIP file but not a workbook openpyxl can read ({exc})") from exc  # fmt: skip
        grids = []
        for sheet in book.worksheets:
            rows = [list(r) for r in sheet.iter_rows(values_only=True)]

            def where(r: int, c: int | None, title: str = sheet.title) -> str:
                if c is None:
                    return f"{path}:{title} row {r + 1}"
                return f"{path}:{title}!{get_column_letter(c + 1)}{r + 1}"

            def raw(r: int, rows: list[list[Any]] = rows) -> bytes:
                cells = list(rows[r])
                while cells and cells[-1] is None:
                    cells.pop()
                return _csv_bytes(cells)

            grids.append(Grid(rows, where, raw, f"{path}:{sheet.title}"))
        return grids

    def _csv(self, path: Path, text: str) -> Grid:
        lines = text.lstrip("\ufeff").splitlines()
        sample = [ln for ln in lines[:50] if ln.strip()]
        delimiter = max([",", ";", "\t", "|"], key=lambda d: (_width(sample, d), d == ","))
        rows: list[list[Any]] = []
        numbers: list[int] = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(next(csv.reader([line], delimiter=delimiter)))
            except csv.Error as exc:
                rows.append([RowError("unparseable_row", f"not a CSV line: {exc}")])
            numbers.append(n)

        def where(r: int, c: int | None) -> str:
            return f"{path}:{numbers[r]}"

        def raw(r: int) -> bytes:
            return lines[numbers[r] - 1].encode()

        return Grid(rows, where, raw, str(path), strict_width=True)

    def _json(self, path: Path, text: str) -> Parsed:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise SourceError(f"{path}: not JSON: {exc}") from exc
        items = doc.get("data", doc.get("rows", [])) if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise SourceError(f"{path}: expected a JSON array of rows, or an object whose data is one")  # fmt: skip
        sample = next((i for i in items if isinstance(i, dict)), {})
        keys = {name_key(str(k)): str(k) for k in sample}
        day_key, name_col, price_key = (next((k for n, k in keys.items() if rx.match(n)), None)
                                        for rx in (_DAY, _NAME, _PRICE))  # fmt: skip
        records: list[Record] = []
        if day_key and name_col and price_key:
            unit_key = next((k for n, k in keys.items() if _UNIT.match(n)), None)
            id_key = next((k for n, k in keys.items() if n == "id"), None)
            mdy = month_first(i.get(day_key) for i in items if isinstance(i, dict))
            for where, raw, item in _objects(items, path, records):
                records.append(Record(
                    where, raw, _text(item.get(name_col)),
                    [self._long_cell(item.get(day_key), item.get(price_key), where, mdy)],
                    unit=_text(item.get(unit_key)) if unit_key else None,
                    bapanas_id=_text(item.get(id_key)) if id_key else "",
                ))  # fmt: skip
            return Parsed(records, "long", str(path))
        if name_col:  # PIHPS' grid: {"no", "name", "level", "DD/MM/YYYY": "16,200", ...}
            mdy = month_first(k for i in items if isinstance(i, dict) for k in i)
            for where, raw, item in _objects(items, path, records):
                name = next((v for k, v in item.items() if _NAME.match(name_key(str(k)))), "")
                cells = [Cell(d, v, f"{where} [{k}]") for k, v in item.items()
                         if (d := parse_day(k, mdy)) is not None]  # fmt: skip
                level = item.get("level")
                group = None if level is None else str(level).strip() == "1"
                if group is None and (no := _text(item.get("no"))):
                    group = bool(_ROMAN.match(no))
                records.append(Record(where, raw, _text(name), cells, group=group))
            return Parsed(records, "wide", str(path))
        raise SourceError(
            f"{path}: JSON rows with neither a day, Komoditas and Harga (a long table) nor a "
            f"name and a key per day (PIHPS' grid); the first row's keys are {list(sample)[:8]}"
        )

    def _grid(self, grid: Grid) -> Parsed | None:
        """The table in a grid, found by its header row (title rows may come first)."""
        for h, row in enumerate(grid.rows[:HEADER_SEARCH_ROWS]):
            header = [name_key(_text(c)) if not isinstance(c, RowError) else "" for c in row]
            roles = {}
            for rx, role in ((_DAY, "day"), (_NAME, "name"), (_PRICE, "price"), (_UNIT, "unit")):
                roles[role] = next((i for i, t in enumerate(header) if rx.match(t)), None)
            if roles["day"] is not None and roles["name"] is not None and roles["price"] is not None:  # fmt: skip
                return self._long(grid, h, roles)
            if roles["name"] is not None:
                mdy = month_first(row)
                dates = [i for i, c in enumerate(row) if i > roles["name"] and parse_day(c, mdy) is not None]  # fmt: skip
                if dates:
                    return self._wide(grid, h, roles["name"], roles["unit"], dates)
            if self._transposed_header(grid, h):
                return self._transposed(grid, h)
        return None

    def _long_cell(self, day: Any, price: Any, where: str, mdy: bool) -> Cell:
        parsed = parse_day(day, mdy)
        if parsed is None:
            err = RowError("unparseable_row", f"the day {_text(day)!r} is not a date (e.g. 2026-01-31 or 31/01/2026)")  # fmt: skip
            return Cell(err, price, where)
        return Cell(parsed, price, where)

    def _long(self, grid: Grid, h: int, roles: dict[str, int | None]) -> Parsed:
        header = grid.rows[h]
        day_col, name_col, price_col = roles["day"], roles["name"], roles["price"]
        assert day_col is not None and name_col is not None and price_col is not None
        unit_col = roles["unit"]
        id_col = next((i for i, c in enumerate(header) if name_key(_text(c)) == "id"), None)
        body = range(h + 1, len(grid.rows))
        mdy = month_first(grid.rows[r][day_col] for r in body if len(grid.rows[r]) > day_col)
        records = []
        for r in body:
            row, where = grid.rows[r], grid.where(r, None)
            if not any(_text(c) for c in row if not isinstance(c, RowError)):
                continue
            if row and isinstance(row[0], RowError):
                records.append(Record(where, grid.raw(r), "", [], error=row[0]))
                continue
            if grid.strict_width and len(row) != len(header):
                err = RowError("unparseable_row", f"{len(row)} fields, the header has {len(header)}")  # fmt: skip
                records.append(Record(where, grid.raw(r), "", [], error=err))
                continue
            records.append(Record(
                where, grid.raw(r), _text(_at(row, name_col)),
                [self._long_cell(_at(row, day_col), _at(row, price_col), where, mdy)],
                unit=_text(_at(row, unit_col)) if unit_col is not None else None,
                bapanas_id=_text(_at(row, id_col)),
            ))  # fmt: skip
        return Parsed(records, "long", grid.label)

    def _wide(self, grid: Grid, h: int, name_col: int, unit_col: int | None, dates: list[int]) -> Parsed:  # fmt: skip
        header = grid.rows[h]
        no_col = next((i for i in range(name_col) if _NO.match(name_key(_text(header[i])))), None)
        mdy = month_first(header[i] for i in dates)
        days = {i: parse_day(header[i], mdy) for i in dates}
        records = []
        for r in range(h + 1, len(grid.rows)):
            row = grid.rows[r]
            if row and isinstance(row[0], RowError):
                records.append(Record(grid.where(r, None), grid.raw(r), "", [], error=row[0]))
                continue
            cells = [Cell(d, _at(row, i), f"{grid.where(r, i)} [{_text(header[i])}]")
                     for i, d in days.items() if d is not None]  # fmt: skip
            name = _text(_at(row, name_col))
            if not name and all(parse_price_or_text(c.value) is None for c in cells):
                continue  # an empty row, or a note under the table
            no = _text(_at(row, no_col))
            records.append(Record(
                grid.where(r, None), grid.raw(r), name, cells,
                unit=_text(_at(row, unit_col)) if unit_col is not None else None,
                group=bool(_ROMAN.match(no)) if no else None,
            ))  # fmt: skip
        return Parsed(records, "wide", grid.label)

    def _transposed_header(self, grid: Grid, h: int) -> bool:
        row = grid.rows[h]
        names = [_text(c) for c in row[1:] if not isinstance(c, RowError)]
        if not any(self._lookup(n)[0] is not None or name_key(n) in self.group_names for n in names if n):  # fmt: skip
            return False
        below = [r[0] for r in grid.rows[h + 1 : h + 6] if r and _text(r[0])]
        return bool(below) and parse_day(below[0], month_first(below)) is not None

    def _transposed(self, grid: Grid, h: int) -> Parsed:
        header = grid.rows[h]
        body = [r for r in range(h + 1, len(grid.rows)) if grid.rows[r] and not isinstance(grid.rows[r][0], RowError)]  # fmt: skip
        mdy = month_first(grid.rows[r][0] for r in body)
        days = {r: parse_day(grid.rows[r][0], mdy) for r in body}
        records: list[Record] = []
        for r in range(h + 1, len(grid.rows)):
            row = grid.rows[r]
            if row and isinstance(row[0], RowError):
                records.append(Record(grid.where(r, None), grid.raw(r), "", [], error=row[0]))
            elif row and _text(row[0]) and days.get(r) is None:
                err = RowError("unparseable_row", f"the day {_text(row[0])!r} is not a date (e.g. 31/01/2026)")  # fmt: skip
                records.append(Record(grid.where(r, None), grid.raw(r), "", [], error=err))
        for c in range(1, len(header)):
            name = _text(header[c])
            if not name:
                continue
            cells = [Cell(d, grid.rows[r][c] if c < len(grid.rows[r]) else None,
                          f"{grid.where(r, c)} [{name}]")
                     for r, d in days.items() if d is not None]  # fmt: skip
            records.append(Record(f"{grid.where(h, c)} [{name}]", _csv_bytes([name]), name, cells))  # fmt: skip
        return Parsed(records, "transposed", grid.label)

    # -- from records to observations --------------------------------------------------------

    def _lookup(self, name: str) -> tuple[Commodity | None, str | None]:
        """The commodity a name stands for, and the unit it carries ("Gula Pasir (kg)")."""
        commodity = self.commodities.resolve(name)
        if commodity is None and (m := _WITH_UNIT.match(name)):
            unit = normalize_unit(m[2])
            if unit in UNITS or name_key(m[2]) in ("rp", "rupiah"):
                commodity = self.commodities.resolve(m[1])
                return commodity, unit if unit in UNITS else None
        return commodity, None

    def _emit(self, parsed: Parsed) -> tuple[list[tuple[date, int, PriceObservation]], list[tuple[Record, Cell | None, RowError]], list[Record]]:  # fmt: skip
        """Observations (day, order, event), refusals (record, cell, why) and the records
        skipped as group averages, for one table."""
        resolved = {name: self._lookup(name) for name in {r.name for r in parsed.records if r.name}}
        # PIHPS groups whose grades are in the table (a group's own name, e.g. Bapanas'
        # "Bawang Merah", is not one of its grades).
        present = {name_key(c.pihps_group) for name, (c, _) in resolved.items()
                   if c and c.pihps_group and name_key(name) != name_key(c.pihps_group)}  # fmt: skip
        obs: list[tuple[date, int, PriceObservation]] = []
        refused: list[tuple[Record, Cell | None, RowError]] = []
        grouped: list[Record] = []
        seen: dict[tuple[str, date], tuple[float, str]] = {}
        for n, rec in enumerate(parsed.records):
            if rec.error is not None:
                refused.append((rec, None, rec.error))
                continue
            commodity, name_unit = resolved.get(rec.name, (None, None))
            if commodity is None and rec.bapanas_id.isdigit():
                commodity = self.by_bapanas_id.get(int(rec.bapanas_id))
            key = name_key(rec.name)
            # A PIHPS group row averages its grades: skipped when they are there, or when
            # the group is no commodity of its own ("Beras"; but "Bawang Merah" is one).
            if key in self.group_names and rec.group is not False and (key in present or commodity is None):  # fmt: skip
                grouped.append(rec)
                continue
            priced = [(c, self._price(c.value)) for c in rec.cells]
            if commodity is None:
                if parsed.layout == "long":
                    if isinstance(rec.cells[0].day, RowError):
                        refused.append((rec, None, rec.cells[0].day))
                        continue
                    if isinstance(priced[0][1], RowError) or priced[0][1] is not None:
                        refused.append((rec, None, self._unknown(rec)))
                    else:
                        self._missing(1)
                elif any(p is not None for _, p in priced):
                    refused.append((rec, None, self._unknown(rec)))
                continue
            unit = rec.unit or name_unit
            if unit and normalize_unit(unit) != commodity.unit:
                why = RowError("unit_mismatch", f"Satuan {unit!r}: {commodity.id} ({rec.name}) is priced per {commodity.unit}")  # fmt: skip
                refused.append((rec, None, why))
                continue
            for cell, price in priced:
                if isinstance(cell.day, RowError):
                    refused.append((rec, cell, cell.day))
                elif isinstance(price, RowError):
                    refused.append((rec, cell, price))
                elif price is None:
                    self._missing(1)
                else:
                    first = seen.setdefault((commodity.id, cell.day), (price, cell.where))
                    if first[1] != cell.where:
                        if first[0] == price:
                            self.stats.duplicates += 1
                            continue
                        why = RowError("conflicting_price", f"{rec.name!r} gives {commodity.id} Rp {price:,.0f} on {cell.day}, but {first[1]} gave Rp {first[0]:,.0f}; the first is kept")  # fmt: skip
                        refused.append((rec, cell, why))
                        continue
                    try:
                        ob = PriceObservation(
                            market_id=self.market, commodity_id=commodity.id, grade=commodity.grade,
                            unit=commodity.unit, price_idr=price, date=cell.day, source=self.source,
                            observed_at=datetime.combine(cell.day, time(0), self.zone),
                        )  # fmt: skip
                    except ValidationError as exc:  # the model refused a value
                        error = exc.errors()[0]
                        field = ".".join(str(p) for p in error["loc"])
                        refused.append((rec, cell, RowError("unparseable_row", f"{field}: {error['msg']}")))  # fmt: skip
                        continue
                    except (ValueError, OverflowError):  # a day at the edge of the calendar
                        refused.append((rec, cell, RowError("unparseable_row", f"the day {cell.day} is out of range")))  # fmt: skip
                        continue
                    obs.append((cell.day, n, ob))
        if parsed.layout != "long":  # a day at a time, as a live feed would send them
            obs.sort(key=lambda o: (o[0], o[1]))
        return obs, refused, grouped

    def _price(self, value: Any) -> float | RowError | None:
        try:
            price = parse_price(value)
        except ValueError:
            return RowError("unparseable_row", f"the price {_text(value)!r} is not a number")
        if price is not None and (price < 0 or not math.isfinite(price)):
            return RowError("invalid_price", f"the price {_text(value)!r} is not a price")
        return price

    def _unknown(self, rec: Record) -> RowError:
        self.stats.unknown[rec.name] += 1
        return RowError("unknown_commodity", f"{rec.name!r} is not in the commodity list (schemas/commodities.toml)")  # fmt: skip

    def _missing(self, n: int) -> None:
        self.stats.missing += n
        MISSING.labels(self.name).inc(n)

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        batch: list[PriceObservation] = []
        for path in self.files:
            for parsed in self.read(path):
                missing_before = self.stats.missing
                obs, refused, grouped = self._emit(parsed)
                log.info(
                    f"{parsed.where}: {parsed.layout} price table, {len(parsed.records)} "
                    f"{'rows' if parsed.layout != 'transposed' else 'columns'}",
                    extra={"connector": self.name, "layout": parsed.layout, "observations": len(obs)},
                )  # fmt: skip
                for rec, cell, why in refused:
                    self.stats.rejected += 1
                    where = cell.where if cell is not None else rec.where
                    await publisher.dead_letter(rec.raw, why.reason, f"{where}: {why}", where)
                for rec in grouped:
                    n = sum(1 for c in rec.cells if isinstance(self._price(c.value), float))
                    self.stats.grouped += n
                    self.stats.groups[rec.name] += n
                    publisher.skip("group_average", n)
                publisher.skip("missing_price", self.stats.missing - missing_before)
                for _, _, ob in obs:
                    batch.append(ob)
                    if len(batch) >= self.batch_size:
                        self.stats.published += len(batch)
                        yield batch
                        batch = []
        if batch:
            self.stats.published += len(batch)
            yield batch
        publisher.skip("duplicate", self.stats.duplicates)
        if self.stats.unknown:
            log.warning(f"{self.name}: {self.unknown_sentence()}", extra={"connector": self.name, "unknown": dict(self.stats.unknown)})  # fmt: skip
        log.info("price replay done", extra={"connector": self.name, "market": self.market,
                                             "published": self.stats.published, "missing": self.stats.missing,
                                             "rejected": self.stats.rejected, "group_average": self.stats.grouped})  # fmt: skip

    def unknown_sentence(self) -> str:
        """The names not in the commodity list, each with its count of records."""
        unknown = self.stats.unknown
        names = ", ".join(f"{name!r} {n}" for name, n in unknown.most_common(20))
        if len(unknown) > 20:
            names += f" and {len(unknown) - 20} more names"
        sentence = (f"{sum(unknown.values())} records name commodities not in "
                    f"schemas/commodities.toml, dead-lettered as unknown_commodity: {names}")  # fmt: skip
        if sum(1 for name in unknown if _REGION.match(name_key(name))) >= 3:
            sentence += (" (these are regions: this looks like PIHPS' table by commodity, "
                         "one row per region; export the table by region, 'Tabel Harga "
                         "Berdasarkan Daerah', for one region instead)")  # fmt: skip
        return sentence

    def emptiness(self) -> str:
        parts = []
        if self.stats.unknown:
            parts.append(self.unknown_sentence())
        if self.stats.groups:
            groups = ", ".join(sorted(self.stats.groups))
            parts.append(f"only PIHPS group averages had prices ({groups}): export the grades too")  # fmt: skip
        if self.stats.missing:
            parts.append(f"{self.stats.missing} prices were empty, '-' or 0 (not collected)")
        return "; ".join(parts)


def parse_price_or_text(value: Any) -> float | str | None:
    """A cell's price, its text when it is not a number, None when it is empty or missing."""
    try:
        return parse_price(value)
    except ValueError:
        return _text(value) or None


def _width(lines: list[str], delimiter: str) -> int:
    """The usual number of fields of the lines when split at ``delimiter``."""
    widths: Counter[int] = Counter()
    for line in lines:
        try:
            widths[len(next(csv.reader([line], delimiter=delimiter)))] += 1
        except csv.Error:
            continue
    return widths.most_common(1)[0][0] if widths else 0


def _objects(
    items: list[Any], path: Path, records: list[Record]
) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
    """Each JSON row as (where, raw, object); a row that is not an object is refused in its
    place among ``records``."""
    for n, item in enumerate(items, 1):
        where = f"{path}:item {n}"
        raw = json.dumps(item, ensure_ascii=False).encode()
        if isinstance(item, dict):
            yield where, raw, item
        else:
            records.append(Record(where, raw, "", [], error=RowError(
                "unparseable_row", f"item {n} is not an object")))  # fmt: skip
