"""Real Bapanas prices (Kota Bandung) with corrupt lines → price replay → Kafka (tansu) →
worker → ClickHouse (chdb) → API; and the Semarang simulator's scripted alarms."""

from __future__ import annotations

import csv
import statistics
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from connectors.price_replay import PriceReplay
from connectors.price_simulator import PriceSimulator
from schemas.catalog import DEAD_LETTER
from schemas.prices import load_commodities, load_markets
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import api_client, eventually, running_worker
from tests.integration.test_bad_input_and_gtfs import read_topic

pytestmark = pytest.mark.integration

BANDUNG = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "food-prices"
    / "bapanas_harga_konsumen_kota_bandung.csv"
)
DAYS = 20


def prepare(tmp_path: Path) -> tuple[Path, list[dict[str, str]], list[int]]:
    """The first DAYS days of the real file, with three corrupt lines spliced in."""
    lines = BANDUNG.read_text().splitlines()
    header, body = lines[0], lines[1:]
    days = sorted({line.split(",", 1)[0] for line in body})[:DAYS]
    kept = [line for line in body if line.split(",", 1)[0] in days]
    corrupt = {
        40: "2025-09-14,27,Beras Premium,Rp./Kg",  # truncated
        120: "2025-13-45,28,Beras Medium,Rp./Kg,13000,13000,12-9-2025,0,0,no_change",
        300: "2025-09-20,30,Bawang Merah,Rp./Kg,empat puluh ribu,42500,19-9-2025,0,0,up",
    }
    out, bad_lines = [header], []
    for i, line in enumerate(kept):
        if i in corrupt:
            out.append(corrupt[i])
            bad_lines.append(len(out))  # 1-based line number of the corrupt line
        out.append(line)
    path = tmp_path / "bandung.csv"
    path.write_text("\n".join(out) + "\n")
    rows = list(csv.DictReader([header, *kept]))
    return path, rows, bad_lines


async def test_bandung_replay_end_to_end(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    wh = clean_warehouse
    path, rows, bad_lines = prepare(tmp_path)
    priced = [r for r in rows if float(r["Harga"]) > 0]
    replay = PriceReplay([path], "kota-bandung", load_commodities())
    async with running_worker(settings, broker.bootstrap, wh):
        await run_connector(replay, broker.bootstrap)
        assert (replay.stats.published, replay.stats.missing, replay.stats.rejected) == (
            len(priced),
            len(rows) - len(priced),
            3,
        )
        async with api_client(settings, wh, broker.bootstrap) as api:

            async def all_days() -> list:  # type: ignore[type-arg]
                got = (
                    await api.get(
                        "/v1/prices/daily",
                        params={"market": "kota-bandung", "days": 366, "limit": 5000},
                    )
                ).json()
                return got if len(got) == len(priced) else []

            daily = await eventually(all_days, 60, "every priced row in prices_daily")
            assert all(d["price_idr"] > 0 for d in daily)
            # Missing (0) prices are not rows: Jagung has no price in the file at all.
            assert not [d for d in daily if d["commodity_id"] == "jagung-peternak"]

            # The city series of a one-market city is that market's; the 7-day median is
            # recomputed here from the file.
            chilli = [r for r in priced if r["Komoditas"] == "Cabai Merah Keriting"]
            last = chilli[-1]
            since = (date.fromisoformat(last["Timestamp"]) - timedelta(days=7)).isoformat()
            prior = [float(r["Harga"]) for r in chilli[:-1] if r["Timestamp"] >= since]
            city = (
                await api.get(
                    "/v1/prices/city",
                    params={"city": "kota-bandung", "commodity": "cabai-merah-keriting"},
                )
            ).json()
            assert len(city) == 1 and city[0]["day"] == last["Timestamp"]
            assert city[0]["median_idr"] == float(last["Harga"])
            assert city[0]["median_7d_idr"] == statistics.median(prior)

            alarms = (
                await api.get("/v1/alarms", params={"kind": "price_above_het", "state": "all"})
            ).json()["items"]
            rice = [a for a in alarms if a["entity"] == "kota-bandung/beras-premium"]
            assert rice and rice[0]["context"]["ceiling_kind"] == "HET"

    dead = await read_topic(broker.bootstrap, DEAD_LETTER.name, 3)
    details = sorted(dict(r.headers)["detail"].decode() for r in dead)
    assert [d.split(": ", 1)[0] for d in details] == sorted(f"{path}:{n}" for n in bad_lines)


async def test_simulated_markets_raise_the_scripted_alarms(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    wh = clean_warehouse
    start = time.time() - 3600
    sim = PriceSimulator(load_markets(), load_commodities(), seed=3, start=start,
                         duration_s=1200, realtime=False)  # fmt: skip
    async with running_worker(settings, broker.bootstrap, wh):
        await run_connector(sim, broker.bootstrap)
        async with api_client(settings, wh, broker.bootstrap) as api:

            async def scripted() -> set:  # type: ignore[type-arg]
                items = (
                    await api.get("/v1/alarms", params={"domain": "prices", "state": "active"})
                ).json()["items"]
                got = {(a["kind"], a["entity"]) for a in items}
                want = {(s.kind, f"{s.market_id}/{s.commodity_id}" if s.commodity_id else s.market_id)
                        for s in sim.truth}  # fmt: skip
                return got if want <= got else set()

            await eventually(scripted, 60, "the simulator's scripted alarms")
            city = (await api.get("/v1/prices/city")).json()
            assert len(city) == len(sim.commodities)
            assert all(c["markets"] == len(sim.markets) - 1 for c in city)  # one market is silent
            assert all(c["median_7d_idr"] is not None for c in city)
            situation = (await api.get("/v1/situation")).json()
            assert (
                situation["counts"]["prices"]["markets_reporting_last_day"] == len(sim.markets) - 1
            )


PIHPS_XLSX = BANDUNG.with_name("pihps_nasional_2026-01_2026-04.xlsx")


async def test_a_real_pihps_workbook_lands_grade_by_grade(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    """PIHPS' .xlsx export (national averages, Jan-Apr 2026, 21 grades under 10 group
    rows): every grade is its own series in the tables and the API, the group rows are not
    stored, and the graded rice and sugar have their ceilings."""
    wh = clean_warehouse
    replay = PriceReplay([PIHPS_XLSX], "kota-bandung", load_commodities(), source="pihps")
    async with running_worker(settings, broker.bootstrap, wh):
        await run_connector(replay, broker.bootstrap)
        assert (replay.stats.published, replay.stats.rejected) == (21 * 86, 0)
        async with api_client(settings, wh, broker.bootstrap) as api:

            async def all_rows() -> list:  # type: ignore[type-arg]
                got = (await api.get("/v1/prices/daily", params={
                    "market": "kota-bandung", "days": 366, "limit": 5000})).json()  # fmt: skip
                return got if len(got) == 21 * 86 else []

            daily = await eventually(all_rows, 60, "every grade and day in prices_daily")
            first = {d["commodity_id"]: d for d in daily if d["day"] == "2026-01-01"}
            assert len(first) == 21
            assert (first["beras-medium-1"]["price_idr"], first["beras-medium-2"]["price_idr"]) == (15900, 15800)  # fmt: skip
            assert (first["beras-medium-1"]["grade"], first["daging-sapi-2"]["grade"]) == ("medium-1", "kualitas-2")  # fmt: skip
            commodities = {c["id"]: c for c in (await api.get("/v1/prices/commodities")).json()}
            assert commodities["beras-medium-2"]["ceiling_idr"] == 13500
            assert commodities["gula-pasir-lokal"]["ceiling_kind"] == "HAP"
            assert commodities["cabai-rawit-hijau"]["ceiling_idr"] is None
