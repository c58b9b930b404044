"""Replay of SPSE (LPSE portal) DataTables listings: every row becomes an ``announced``
tender event with the owner's estimate (HPS/pagu), method, category, year and status.

The listings are positional arrays whose column order depends on the listing (``--kind``,
or detected from the file name and the rows' shape). SPSE amounts are abbreviated with an
Indonesian decimal comma ("3,8 Jt"). A listing says nothing about when a package was
announced, so events carry the replay's ``as_of`` time. A row that cannot be read, even
one that breaks the JSON, is dead-lettered with the file and line, and the rest imported.
"""

from __future__ import annotations

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
from schemas.catalog import TENDER_EVENTS
from schemas.procurement import TenderEvent, TenderKind, TenderSource, parse_idr, slug

log = logging.getLogger(__name__)
_decoder = json.JSONDecoder()
_YEAR = re.compile(r"^(19|20)\d\d$")


class ListingKind(StrEnum):
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
    """The elements of the top-level ``key`` array with their line numbers. A row that is
    not valid JSON is returned undecoded and reading resumes at the next line that starts a
    row, so one broken row does not cost the file."""
    m = re.search(r'"' + re.escape(key) + r'"\s*:\s*\[', text)
    if not m:
        raise ValueError(f'no "{key}" array')
    rows: list[Row] = []
    pos, end = m.end(), len(text)
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


def detect_kind(path: Path, rows: Sequence[Row]) -> ListingKind:
    for kind in ListingKind:
        if kind.value in path.name.lower():
            return kind
    shapes = [r.value for r in rows if isinstance(r.value, list)]
    if any(len(v) == 9 for v in shapes):
        return ListingKind.NONSPK
    if any(len(v) == 8 and _YEAR.match(str(v[4])) for v in shapes):
        return ListingKind.DARURAT
    if any(len(v) == 8 and _YEAR.match(str(v[5])) for v in shapes):
        return ListingKind.SWAKELOLA
    raise ValueError("cannot tell the listing kind; give --kind nonspk|darurat|swakelola")


def row_event(kind: ListingKind, row: list[Any], as_of: datetime, connector: str) -> TenderEvent:
    """One listing row as an ``announced`` event; ValueError/ValidationError if unreadable."""
    layout = LAYOUTS[kind]
    if len(row) != layout.columns:
        raise ValueError(f"{len(row)} columns, a {kind.value} row has {layout.columns}")
    cells = ["" if c is None else str(c).strip() for c in row]
    code, agency = cells[0], cells[2]
    if not code or not agency:
        raise ValueError("no package id or no agency")
    if not _YEAR.match(cells[layout.year]):
        raise ValueError(f"year {cells[layout.year]!r} is not a year")
    tender_id = f"{kind.value}-{code}"
    return TenderEvent(
        event_id=f"spse:{tender_id}/announced",
        source=TenderSource.SPSE,
        tender_id=tender_id,
        kind=TenderKind.ANNOUNCED,
        ts=as_of,
        agency_id=slug(agency),
        agency_name=agency,
        title=cells[1] or None,
        method=cells[layout.method] if layout.method is not None else METHOD_OF_KIND[kind],
        category=(cells[layout.category] or None) if layout.category is not None else None,
        year=int(cells[layout.year]),
        status=cells[layout.status] or None,
        estimate_amount=parse_idr(cells[3]),
        estimate_currency="IDR",
        connector=connector,
    )


class SpseReplaySource(Source):
    name = "spse-replay"
    finite = True
    topic = TENDER_EVENTS

    def __init__(self, files: Sequence[Path], kind: ListingKind | None = None,
                 as_of: datetime | None = None) -> None:  # fmt: skip
        if not files:
            raise ValueError("give one or more listing files")
        self.files = list(files)
        self.kind = kind
        self.as_of = as_of

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, TenderEvent)
        return event.agency_id

    def read(self, path: Path, as_of: datetime) -> tuple[list[TenderEvent], list[tuple[str, str, str, bytes]]]:  # fmt: skip
        """Events and rejects ``(reason, detail, location, raw)`` of one listing file."""
        text = path.read_bytes().decode("utf-8", errors="replace")
        try:
            rows = split_rows(text)
            kind = self.kind or detect_kind(path, rows)
        except ValueError as exc:
            return [], [("unreadable_file", str(exc), str(path), text.encode())]
        events: list[TenderEvent] = []
        rejects: list[tuple[str, str, str, bytes]] = []
        for row in rows:
            where = f"{path}:{row.line} (data[{row.index}])"
            if not isinstance(row.value, list):
                detail = "not JSON" if row.value is None else "a row must be an array"
                rejects.append(("unparseable_row", detail, where, row.raw.encode()))
                continue
            try:
                events.append(row_event(kind, row.value, as_of, self.name))
            except ValidationError as exc:
                err = exc.errors()[0]
                detail = f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
                rejects.append(("unparseable_row", detail, where, row.raw.encode()))
            except (ValueError, TypeError) as exc:
                rejects.append(("unparseable_row", str(exc), where, row.raw.encode()))
        return events, rejects

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        as_of = self.as_of or datetime.now(UTC)
        for path in self.files:
            events, rejects = self.read(path, as_of)
            for reason, detail, where, raw in rejects:
                await publisher.dead_letter(raw, reason, detail, where)
            log.info("listing replayed", extra={"connector": self.name, "file": str(path),
                                                "events": len(events), "rejected": len(rejects)})  # fmt: skip
            yield events
