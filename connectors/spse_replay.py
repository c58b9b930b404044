"""Replay of SPSE (LPSE portal) DataTables listings: every row becomes an ``announced``
tender event with the owner's estimate (HPS/pagu), method, category, year and status.

The listings are positional arrays whose column order depends on the listing (``--kind``,
or detected from the file name and the rows' shape): the tender listing (``/dt/lelang``),
non-tender, emergency and self-managed packages. SPSE amounts are abbreviated with an
Indonesian decimal comma ("3,8 Jt"). A listing says nothing about when a package was
announced, so events carry the replay's ``as_of`` time. A row that cannot be read, even
one that breaks the JSON, is dead-lettered with the file and line, and the rest imported.

The tender listing has (SPSE 4.x, 14 columns; 4.5 nationally, 16) the package id, name
(with a status badge in HTML, "Seleksi Ulang"), agency, current stage, HPS, qualification,
method ("Tender", "Seleksi", "Tender Cepat"), evaluation, "<category> - TA <year>[, <year>]",
the SPSE version and the contract value; only the first nine are read.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from connectors.base import Source
from connectors.publisher import KafkaPublisher
from connectors.textfile import UnreadableFile, decode
from schemas.catalog import TENDER_EVENTS
from schemas.procurement import TenderEvent, TenderKind, TenderSource, parse_idr, refusal, slug

log = logging.getLogger(__name__)
_decoder = json.JSONDecoder()
_YEAR = re.compile(r"^(19|20)\d\d$")
# The tender listing's category and budget year(s): "Pekerjaan Konstruksi - TA 2026",
# "Pengadaan Barang - TA 2027, 2028, 2026" (multi-year), "Pengadaan Barang - 2025".
_CATEGORY_YEARS = re.compile(
    r"^(?P<category>.*?)\s*-\s*(?:TA\s*)?(?P<years>(?:19|20)\d\d(?:\s*[,/]\s*(?:19|20)\d\d)*)\s*$",
    re.IGNORECASE,
)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
MAX_RAW = 1 << 20  # a dead letter keeps at most this much of an unreadable file


class ListingKind(StrEnum):
    LELANG = "lelang"  # tenders and selections (Tender, Seleksi, Tender Cepat)
    NONSPK = "nonspk"  # non-tender packages (Pengadaan Langsung etc.)
    DARURAT = "darurat"  # emergency procurement
    SWAKELOLA = "swakelola"  # self-managed work


@dataclass(frozen=True)
class Layout:
    columns: int
    year: int
    method: int | None  # None: the listing kind is the method
    category: int | None
    status: int


LAYOUTS = {
    # Columns 9 on (SPSE version, contract value, flags) vary between versions; unread.
    ListingKind.LELANG: Layout(9, year=8, method=6, category=8, status=3),
    ListingKind.NONSPK: Layout(9, year=6, method=4, category=5, status=8),
    ListingKind.DARURAT: Layout(8, year=4, method=None, category=6, status=7),
    ListingKind.SWAKELOLA: Layout(8, year=5, method=None, category=None, status=7),
}
METHOD_OF_KIND = {ListingKind.DARURAT: "Darurat", ListingKind.SWAKELOLA: "Swakelola"}


@dataclass(frozen=True)
class Row:
    index: int
    line: int
    raw: str
    value: Any  # None when the row is not JSON


def split_rows(text: str, key: str = "data") -> list[Row]:
    """The elements of the top-level ``key`` array (or of the top-level array itself, as
    saved from the rows alone) with their line numbers. A row that is not valid JSON is
    returned undecoded and reading resumes at the next line that starts a row, so one
    broken row does not cost the file."""
    m = re.search(r'"' + re.escape(key) + r'"\s*:\s*\[', text)
    bare = re.match(r"\s*\[", text)
    if not m and not bare:
        raise ValueError(f'not a DataTables listing: no "{key}" array of rows')
    rows: list[Row] = []
    pos, end = (m or bare).end(), len(text)  # type: ignore[union-attr]
    while True:
        while pos < end and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= end:
            raise ValueError(f'the "{key}" array is not closed')
        if text[pos] == "]":
            return rows
        line = text.count("\n", 0, pos) + 1
        try:
            value, after = _decoder.raw_decode(text, pos)
            rows.append(Row(len(rows), line, text[pos:after], value))
            pos = after
        except json.JSONDecodeError:
            resume = _next_row(text, pos)
            rows.append(Row(len(rows), line, text[pos:resume].rstrip().rstrip(","), None))
            pos = resume


def _next_row(text: str, pos: int) -> int:
    """The start of the next line that opens a decodable row, else the array's end (the
    last "]" of the file before its closing brace)."""
    nl = text.find("\n", pos)
    while nl != -1:
        start = nl + 1
        stripped = text[start:].lstrip(" \t")
        at = len(text) - len(stripped)
        if stripped.startswith("["):
            try:
                _decoder.raw_decode(text, at)
                return at
            except json.JSONDecodeError:
                pass
        nl = text.find("\n", start)
    last = text.rfind("]")
    return last if last > pos else len(text)


def _fits(kind: ListingKind, row: list[Any]) -> bool:
    """Whether a row has the shape of ``kind``'s listing (its column count and year)."""
    layout = LAYOUTS[kind]
    if kind is ListingKind.LELANG:
        return len(row) >= layout.columns and bool(_CATEGORY_YEARS.match(str(row[8] or "")))
    return len(row) == layout.columns and bool(_YEAR.match(str(row[layout.year] or "").strip()))


def detect_kind(path: Path, rows: Sequence[Row]) -> ListingKind:
    """The kind named in the file name (``dt_lelang.json``), else the one most rows fit."""
    for kind in ListingKind:
        if kind.value in path.name.lower():
            return kind
    shapes = [r.value for r in rows if isinstance(r.value, list)]
    fitting = {kind: sum(_fits(kind, v) for v in shapes) for kind in ListingKind}
    best = max(fitting, key=lambda k: fitting[k])
    if fitting[best]:
        return best
    kinds = "|".join(k.value for k in ListingKind)
    raise ValueError(f"cannot tell which SPSE listing this is; give --kind {kinds}")


def _text(cell: str) -> str:
    """A cell without its HTML (a status badge in a package name) and entities."""
    return " ".join(html.unescape(_TAG.sub(" ", cell)).split())


def row_event(kind: ListingKind, row: list[Any], as_of: datetime, connector: str) -> TenderEvent:
    """One listing row as an ``announced`` event; ValueError/ValidationError if unreadable."""
    layout = LAYOUTS[kind]
    if kind is ListingKind.LELANG and len(row) < layout.columns:
        raise ValueError(f"{len(row)} columns, a {kind.value} row has {layout.columns} or more")
    if kind is not ListingKind.LELANG and len(row) != layout.columns:
        raise ValueError(f"{len(row)} columns, a {kind.value} row has {layout.columns}")
    cells = ["" if c is None else _text(str(c)) for c in row]
    code, agency = cells[0], cells[2]
    if not code or not agency:
        raise ValueError("no package id or no agency")
    category: str | None
    if kind is ListingKind.LELANG:
        m = _CATEGORY_YEARS.match(cells[8])
        if not m:
            raise ValueError(
                f"column 9 {cells[8]!r} is not '<category> - TA <year>' as in a tender listing"
            )
        # A multi-year package is counted in the year it starts.
        year = min(int(y) for y in re.findall(r"\d{4}", m["years"]))
        category = m["category"] or None
    else:
        if not _YEAR.match(cells[layout.year]):
            raise ValueError(f"year {cells[layout.year]!r} is not a year")
        year = int(cells[layout.year])
        category = (cells[layout.category] or None) if layout.category is not None else None
    tender_id = f"{kind.value}-{code}"
    # The tender listing leaves the HPS empty where the LPSE hides it; the others never do.
    amount = cells[4] if kind is ListingKind.LELANG else cells[3]
    estimate = parse_idr(amount) if amount or kind is not ListingKind.LELANG else None
    return TenderEvent(
        event_id=f"spse:{tender_id}/announced",
        source=TenderSource.SPSE,
        tender_id=tender_id,
        kind=TenderKind.ANNOUNCED,
        ts=as_of,
        agency_id=slug(agency),
        agency_name=agency,
        title=cells[1] or None,
        method=METHOD_OF_KIND[kind] if layout.method is None else (cells[layout.method] or None),
        category=category,
        year=year,
        status=cells[layout.status] or None,
        estimate_amount=estimate,
        estimate_currency="IDR" if estimate is not None else None,
        connector=connector,
    )


class SpseReplaySource(Source):
    name = "spse-replay"
    finite = True
    topic = TENDER_EVENTS

    def __init__(self, files: Sequence[Path], kind: ListingKind | None = None,
                 as_of: datetime | None = None, encoding: str | None = None) -> None:  # fmt: skip
        if not files:
            raise ValueError("give one or more listing files")
        self.files = list(files)
        self.kind = kind
        self.as_of = as_of
        self.encoding = encoding
        self.rows_read = 0

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, TenderEvent)
        return event.agency_id

    def read(self, path: Path, as_of: datetime) -> tuple[list[TenderEvent], list[tuple[str, str, str, bytes]]]:  # fmt: skip
        """Events and rejects ``(reason, detail, location, raw)`` of one listing file."""
        data = path.read_bytes()
        try:
            text, _ = decode(data, self.encoding)
            rows = split_rows(text)
            kind = self.kind or detect_kind(path, rows)
        except (UnreadableFile, ValueError) as exc:
            return [], [("unreadable_file", str(exc), str(path), data[:MAX_RAW])]
        log.info("listing read", extra={"connector": self.name, "file": str(path),
                                        "kind": kind.value, "detected": self.kind is None})  # fmt: skip
        events: list[TenderEvent] = []
        rejects: list[tuple[str, str, str, bytes]] = []
        self.rows_read += len(rows)
        for row in rows:
            where = f"{path}:{row.line} (data[{row.index}])"
            if not isinstance(row.value, list):
                detail = "not JSON" if row.value is None else "a row must be an array"
                rejects.append(("unparseable_row", detail, where, row.raw.encode()))
                continue
            try:
                events.append(row_event(kind, row.value, as_of, self.name))
            except ValidationError as exc:
                rejects.append(("unparseable_row", refusal(exc), where, row.raw.encode()))
            except (ValueError, TypeError) as exc:
                rejects.append(("unparseable_row", str(exc), where, row.raw.encode()))
        return events, rejects

    def emptiness(self) -> str:
        return "" if self.rows_read else "the files held no listing rows"

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        as_of = self.as_of or datetime.now(UTC)
        for path in self.files:
            events, rejects = self.read(path, as_of)
            for reason, detail, where, raw in rejects:
                await publisher.dead_letter(raw, reason, detail, where)
            log.info("listing replayed", extra={"connector": self.name, "file": str(path),
                                                "events": len(events), "rejected": len(rejects)})  # fmt: skip
            yield events
