import csv
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.price_replay import PriceReplay
from connectors.price_simulator import PriceSimulator
from schemas.alarm_rules import load_rules
from schemas.prices import PriceObservation, load_commodities, load_markets, normalize_unit

BANDUNG = Path(__file__).resolve().parents[1] / "fixtures" / "food-prices" / "bapanas_harga_konsumen_kota_bandung.csv"  # fmt: skip
T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC).timestamp()  # 10:00 WIB


class FakePublisher:
    def __init__(self) -> None:
        self.dead: list[tuple[bytes, str, str, str]] = []
        self.skipped: Counter[str] = Counter()

    async def dead_letter(self, raw: bytes, reason: str, detail: str, source: str) -> None:
        self.dead.append((raw, reason, detail, source))

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] += n


async def replay(path: Path, market: str = "kota-bandung") -> tuple[PriceReplay, list[PriceObservation], FakePublisher]:  # fmt: skip
    source, publisher = PriceReplay([path], market, load_commodities()), FakePublisher()
    events: list[PriceObservation] = []
    async for batch in source.batches(publisher):  # type: ignore[arg-type]
        events += batch  # type: ignore[arg-type]
    return source, events, publisher


async def test_the_real_bandung_file_maps_onto_the_commodity_list() -> None:
    source, events, publisher = await replay(BANDUNG)
    rows = list(csv.DictReader(BANDUNG.open()))
    zero = [r for r in rows if float(r["Harga"]) == 0]
    assert publisher.dead == []  # every commodity and unit of the real file is known
    assert (source.stats.published, source.stats.missing) == (len(rows) - len(zero), len(zero))
    assert len(events) == len(rows) - len(zero) and all(e.price_idr > 0 for e in events)
    first = events[0]
    assert (first.commodity_id, first.grade, first.unit, first.price_idr, str(first.date)) == (
        "beras-premium", "premium", "kg", 16000.0, "2025-09-13")  # fmt: skip
    # The start of the market day in WIB: never in the future on that day.
    assert first.observed_at == datetime(2025, 9, 12, 17, 0, tzinfo=UTC)
    assert {e.unit for e in events} == {"kg", "liter"}


async def test_corrupt_rows_are_dead_lettered_with_file_and_line(tmp_path: Path) -> None:
    lines = BANDUNG.read_text().splitlines()[:6]
    lines[2] = "2025-09-13,28,Beras Medium"  # truncated
    lines.insert(4, "2025-09-13,999,Durian Montong,Rp./Kg,50000,0,12-9-2025,0,0,up")
    lines.insert(5, "2025-09-13,30,Bawang Merah,Rp./Liter,40000,0,12-9-2025,0,0,up")
    lines.insert(6, "2025-09-13,30,Bawang Merah,Rp./Kg,-5,0,12-9-2025,0,0,up")
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    source, events, publisher = await replay(path)
    assert [(reason, src) for _, reason, _, src in publisher.dead] == [
        ("unparseable_row", f"{path}:3"), ("unknown_commodity", f"{path}:5"),
        ("unit_mismatch", f"{path}:6"), ("invalid_price", f"{path}:7"),
    ]  # fmt: skip
    assert publisher.dead[0][0] == b"2025-09-13,28,Beras Medium"
    # the rest is imported: premium rice, SPHP rice; corn and soybeans at 0 are missing, not free
    assert [e.commodity_id for e in events] == ["beras-premium", "beras-sphp"]
    assert source.stats.missing == 2


async def test_json_rows_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    rows: list[Any] = [
        {"Timestamp": "2025-11-01", "Komoditas": "Minyakita", "Satuan": "Rp/Liter", "Harga": 17800},
        {"Timestamp": "2025-11-01", "Komoditas": "Gula Pasir Lokal", "Satuan": "Rp/kg", "Harga": "18000"},
        "garbage",
    ]  # fmt: skip
    path.write_text(json.dumps(rows))
    _, events, publisher = await replay(path)
    assert [(e.commodity_id, e.price_idr) for e in events] == [("minyakita", 17800.0), ("gula-pasir-lokal", 18000.0)]  # fmt: skip
    assert [d[3] for d in publisher.dead] == [f"{path}:item 3"]


def test_units_and_aliases() -> None:
    assert [normalize_unit(u) for u in ("Rp./Kg", "Rp/kg", "Rp./Liter", "liter", "Lt")] == [
        "kg", "kg", "liter", "liter", "liter"]  # fmt: skip
    commodities = load_commodities()
    assert commodities.resolve("beras kualitas  medium I").id == "beras-medium-1"  # type: ignore[union-attr]
    assert commodities.resolve("Beras Kualitas Medium II").id == "beras-medium-2"  # type: ignore[union-attr]
    assert commodities.resolve("Durian") is None


def test_simulator_is_deterministic_and_scripted() -> None:
    a = PriceSimulator(load_markets(), load_commodities(), seed=2, start=T0, realtime=False)
    b = PriceSimulator(load_markets(), load_commodities(), seed=2, start=T0, realtime=False)
    first = a.events_at(T0)
    assert first == b.events_at(T0)
    days = sorted({e.date for e in first})
    assert len(days) == 15 and days[-1] == a.start_day  # 14 days of backfill, then today
    assert all(e.market_id != "kota-bandung" for e in first)
    # later ticks re-publish the same price for the day
    again = {(e.market_id, e.commodity_id): e.price_idr for e in a.events_at(T0 + 600)}
    today = {(e.market_id, e.commodity_id): e.price_idr for e in first if e.date == a.start_day}
    assert again == today
    yesterday = a.start_day - timedelta(days=1)
    spike = a.price("pasar-johar", "cabai-rawit-merah", a.start_day) / a.price("pasar-johar", "cabai-rawit-merah", yesterday)  # fmt: skip
    assert spike > 1.5
    het = load_rules().prices.ceilings["beras-premium"].price_idr
    assert all(a.price("pasar-jatingaleh", "beras-premium", d) > het for d in days)
    silent = {e.date for e in first if e.market_id == "pasar-gayamsari"}
    assert max(silent) == a.start_day - timedelta(days=4)
    # no other market breaks a ceiling: the alarms in `make run` are the scripted ones
    ceilings = load_rules().prices.ceilings
    over = {(e.market_id, e.commodity_id) for e in first
            if e.commodity_id in ceilings and e.price_idr > ceilings[e.commodity_id].price_idr}  # fmt: skip
    assert over <= {("pasar-jatingaleh", "beras-premium"), ("pasar-johar", "cabai-rawit-merah")}
