"""Replay of staple-food price tables shaped like Bapanas' (Panel Harga Pangan) and PIHPS
exports: CSV with a header ``Timestamp,ID,Komoditas,Satuan,Harga,...`` (extra columns are
ignored), or a JSON array of objects with those keys.

The tables carry no market: one is given for the whole file (Bapanas' city tables are a
city average, e.g. market ``kota-bandung``). A price of 0 means "not collected that day"
in these tables, not "free": it is skipped and counted (``sitroom_connector_prices_missing_total``).
A row that cannot become an observation is dead-lettered with the file and line, and the
rest of the file is imported."""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from pydantic import BaseModel

from connectors.base import Source, SourceError
from connectors.publisher import KafkaPublisher
from schemas.catalog import PRICE_OBSERVATIONS
from schemas.prices import WIB, CommodityRegistry, PriceObservation, normalize_unit

log = logging.getLogger(__name__)

MISSING = Counter(
    "sitroom_connector_prices_missing_total",
    "Price rows skipped because the source marks the price missing (0 or empty)",
    ["connector"],
)
REQUIRED = ("Timestamp", "Komoditas", "Satuan", "Harga")
# The tables give a day, not a time: an observation is taken to be from midday WIB.
OBSERVED_AT = time(12, 0)


class RowError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class ReplayStats:
    published: int = 0
    missing: int = 0
    rejected: int = 0


class PriceReplay(Source):
    name = "price-replay"
    finite = True
    topic = PRICE_OBSERVATIONS

    def __init__(self, files: Sequence[Path], market: str, commodities: CommodityRegistry,
                 source: str = "bapanas", batch_size: int = 200) -> None:  # fmt: skip
        self.files = list(files)
        self.market = market
        self.commodities = commodities
        self.by_bapanas_id = {c.bapanas_id: c for c in commodities.commodities if c.bapanas_id}
        self.source = source
        self.batch_size = batch_size
        self.stats = ReplayStats()

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, PriceObservation)
        return event.commodity_id

    def parse_row(self, row: dict[str, Any]) -> PriceObservation | None:
        """An observation, None for a missing price, or RowError saying why not."""
        raw_day = str(row.get("Timestamp") or "").strip()
        try:
            day = date.fromisoformat(raw_day[:10])
        except ValueError:
            raise RowError(
                "unparseable_row", f"Timestamp {raw_day!r} is not a date (YYYY-MM-DD)"
            ) from None
        raw_price = str(row.get("Harga") if row.get("Harga") is not None else "").strip()
        if raw_price in ("", "0", "0.0", "-"):
            return None
        try:
            price = float(raw_price)
        except ValueError:
            raise RowError("unparseable_row", f"Harga {raw_price!r} is not a number") from None
        if price == 0:
            return None
        if price < 0 or not math.isfinite(price):
            raise RowError("invalid_price", f"Harga {raw_price!r} is not a price")
        name = str(row.get("Komoditas") or "").strip()
        commodity = self.commodities.resolve(name)
        if commodity is None and str(row.get("ID") or "").strip().isdigit():
            commodity = self.by_bapanas_id.get(int(str(row["ID"]).strip()))
        if commodity is None:
            raise RowError("unknown_commodity", f"Komoditas {name!r} is not in the commodity list")
        unit = normalize_unit(str(row.get("Satuan") or ""))
        if unit != commodity.unit:
            raise RowError("unit_mismatch", f"Satuan {row.get('Satuan')!r}: {commodity.id} is priced per {commodity.unit}")  # fmt: skip
        return PriceObservation(
            market_id=self.market, commodity_id=commodity.id, grade=commodity.grade, unit=unit,
            price_idr=price, date=day, source=self.source,
            observed_at=datetime.combine(day, OBSERVED_AT, WIB),
        )  # fmt: skip

    def rows(self, path: Path) -> Iterator[tuple[str, bytes, dict[str, Any] | RowError]]:
        """(location, raw bytes, row or the reason it is unreadable) for every record."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc}") from exc
        if path.suffix.lower() == ".json":
            try:
                doc = json.loads(data)
            except ValueError as exc:
                raise SourceError(f"{path}: not JSON: {exc}") from exc
            items = doc.get("data", []) if isinstance(doc, dict) else doc
            if not isinstance(items, list):
                raise SourceError(f"{path}: expected a JSON array of rows")
            for n, item in enumerate(items, 1):
                raw = json.dumps(item, ensure_ascii=False).encode()
                ok = isinstance(item, dict)
                yield f"{path}:item {n}", raw, item if ok else RowError("unparseable_row", "not an object")  # fmt: skip
            return
        lines = data.splitlines()
        header = next(csv.reader([lines[0].decode("utf-8-sig", "replace")])) if lines else []
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise SourceError(f"{path}: header lacks {', '.join(missing)} (got {header})")
        for n, raw in enumerate(lines[1:], 2):
            where = f"{path}:{n}"
            if not raw.strip():
                continue
            try:
                fields = next(csv.reader([raw.decode("utf-8")]))
            except (UnicodeDecodeError, csv.Error) as exc:
                yield where, raw, RowError("unparseable_row", f"not a CSV line: {exc}")
                continue
            if len(fields) != len(header):
                yield where, raw, RowError("unparseable_row", f"{len(fields)} fields, header has {len(header)}")  # fmt: skip
                continue
            yield where, raw, dict(zip(header, fields, strict=True))

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        batch: list[PriceObservation] = []
        for path in self.files:
            for where, raw, row in self.rows(path):
                try:
                    if isinstance(row, RowError):
                        raise row
                    ob = self.parse_row(row)
                except RowError as exc:
                    self.stats.rejected += 1
                    await publisher.dead_letter(raw, exc.reason, f"{where}: {exc}", where)
                    continue
                except ValueError as exc:  # the model refused a value (e.g. an absurd date)
                    self.stats.rejected += 1
                    await publisher.dead_letter(raw, "unparseable_row", f"{where}: {exc}", where)
                    continue
                if ob is None:
                    self.stats.missing += 1
                    MISSING.labels(self.name).inc()
                    continue
                batch.append(ob)
                if len(batch) >= self.batch_size:
                    self.stats.published += len(batch)
                    yield batch
                    batch = []
        if batch:
            self.stats.published += len(batch)
            yield batch
        log.info("price replay done", extra={"connector": self.name, "market": self.market,
                                             "published": self.stats.published, "missing": self.stats.missing,
                                             "rejected": self.stats.rejected})  # fmt: skip
