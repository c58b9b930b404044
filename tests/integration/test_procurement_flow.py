"""Real SPSE listings and OCDS release packages (+ corrupt rows) → Kafka (tansu) → worker →
ClickHouse (chdb) → API; and the same replay again changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.ocds_replay import OcdsReplaySource
from connectors.spse_replay import SpseReplaySource
from schemas.catalog import DEAD_LETTER
from schemas.settings import Settings
from schemas.warehouse import Warehouse
from sitroom.embedded_broker import EmbeddedBroker
from sitroom.runtime import run_connector
from tests.integration.conftest import api_client, eventually, running_worker
from tests.integration.test_bad_input_and_gtfs import read_topic
from tests.unit.test_procurement_connectors import FIXTURES, corrupt_listing

pytestmark = pytest.mark.integration
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
OCID_1, OCID_2 = "OCDS-87SD3T-AD-SF-DRM-063-2015", "OCDS-87SD3T-AD-SF-DRM-065-2015"


async def _scalar(wh: Warehouse, sql: str) -> Any:
    return next(iter((await wh.query(sql))[0].values()))


async def test_procurement_replays_end_to_end_and_idempotently(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    wh = clean_warehouse
    listings = [*(FIXTURES / f"pyproc_dt_{k}.json" for k in ("darurat_list", "nonspk", "swakelola")),
                corrupt_listing(tmp_path)]  # fmt: skip
    packages = sorted(FIXTURES.glob("ocdskit_cdmx_*.json"))

    async def replay() -> None:
        await run_connector(SpseReplaySource(listings, as_of=AS_OF), broker.bootstrap, None)
        await run_connector(OcdsReplaySource(packages), broker.bootstrap, None)

    async with running_worker(settings, broker.bootstrap, wh):
        await replay()
        async with api_client(settings, wh, broker.bootstrap) as api:

            async def all_tenders() -> dict:  # type: ignore[type-arg]
                page = (await api.get("/v1/procurement/tenders", params={"limit": 1000})).json()
                ocds = [t for t in page["items"] if t["source"] == "ocds"]
                done = (
                    len(page["items"]) == page["total"] == 55
                    and len(ocds) == 2
                    and all(t["stage"] == "contract" for t in ocds)
                    # Findings come once their evidence is past the lateness.
                    and sum(len(t["flags"]) for t in ocds) == 3
                )
                return page if done else {}

            # 25 + 3 + 25 listing rows (the corrupt copy repeats 22 of them) and 2 OCDS tenders.
            page = await eventually(all_tenders, 90, "55 tenders")
            by_key = {t["tender_key"]: t for t in page["items"]}
            first = by_key["spse:nonspk-10942236000"]
            assert (first["estimate_amount"], first["estimate_currency"], first["method"]) == (
                3_800_000, "IDR", "Pengadaan Langsung")  # fmt: skip
            assert sorted(by_key[f"ocds:{OCID_1}"]["flags"]) == [
                "award_near_hps",
                "tender_period_short",
            ]
            assert by_key[f"ocds:{OCID_2}"]["flags"] == ["tender_single_bidder"]
            flagged = (
                await api.get("/v1/procurement/tenders", params={"flag": "award_near_hps"})
            ).json()
            assert [t["tender_key"] for t in flagged["items"]] == [f"ocds:{OCID_1}"]

            methods = {(s["key"], s["currency"]): s for s in
                       (await api.get("/v1/procurement/stats", params={"by": "method"})).json()}  # fmt: skip
            assert methods[("Pengadaan Langsung", "IDR")]["tenders"] == 25
            assert methods[("Pengadaan Langsung", "IDR")]["total_estimate"] == pytest.approx(
                1_123_100_000
            )
            assert methods[("Darurat", "IDR")]["total_estimate"] == pytest.approx(1_600_000_000)
            assert methods[("Swakelola", "IDR")]["total_estimate"] == pytest.approx(884_000_000)
            agencies = {s["key"]: s for s in (await api.get("/v1/procurement/stats")).json()}
            cdmx = agencies["GDF9712054NA"]
            assert (cdmx["tenders"], cdmx["awarded"], cdmx["flagged"], cdmx["currency"]) == (
                2,
                2,
                2,
                "MXN",
            )
            assert cdmx["mean_bidders"] == 1.5 and cdmx["single_bidder_share"] == 0.5
            # The USD award counts in MXN at the release's rate; the MXN one as is.
            assert cdmx["total_awarded"] == pytest.approx(1_311_264 + 75464.96 * 17.7526)
            assert agencies["kab-lampung-selatan"]["tenders"] == 4  # 3 darurat + 1 swakelola
            assert (await api.get("/v1/procurement/stats", params={"by": "x"})).status_code == 422

            flags = (await api.get("/v1/procurement/flags")).json()
            assert {(f["flag"], f["tender_key"]) for f in flags} == {
                ("award_near_hps", f"ocds:{OCID_1}"), ("tender_period_short", f"ocds:{OCID_1}"),
                ("tender_single_bidder", f"ocds:{OCID_2}")}  # fmt: skip

            async def alarms() -> list:  # type: ignore[type-arg]
                items = (await api.get("/v1/alarms", params={"domain": "procurement"})).json()[
                    "items"
                ]
                return items if len(items) == 3 else []

            raised = await eventually(alarms, 30, "three procurement alarms")
            assert {(a["kind"], a["state"]) for a in raised} == {
                ("award_near_hps", "raised"), ("tender_period_short", "raised"),
                ("tender_single_bidder", "raised")}  # fmt: skip
            situation = (await api.get("/v1/situation")).json()
            assert situation["counts"]["procurement"]["tenders"] == 55
            assert "procurement.tender-events" in {f["source"] for f in situation["freshness"]}

            letters = await read_topic(broker.bootstrap, DEAD_LETTER.name, 3)
            where = sorted(dict(r.headers)["source.location"].decode() for r in letters)
            corrupt = listings[-1]
            assert where == [
                f"{corrupt}:17 (data[1])",
                f"{corrupt}:21 (data[2])",
                f"{corrupt}:6 (data[0])",
            ]

            before = {
                "events": await _scalar(wh, "SELECT count() FROM procurement_events FINAL"),
                "version": await _scalar(wh, "SELECT max(version) FROM procurement_tenders FINAL"),
            }
            await replay()

            async def replayed() -> bool:
                oldest = await _scalar(wh, "SELECT min(version) FROM procurement_tenders FINAL")
                return bool(oldest > before["version"])

            await eventually(replayed, 90, "every tender to be touched by the second replay")
            again = (await api.get("/v1/procurement/tenders", params={"limit": 1})).json()
            assert again["total"] == 55
            assert (
                await _scalar(wh, "SELECT count() FROM procurement_events FINAL")
                == before["events"]
            )
            assert len((await api.get("/v1/procurement/flags")).json()) == 3
            everything = (
                await api.get("/v1/alarms", params={"domain": "procurement", "state": "all"})
            ).json()
            assert everything["total"] == 3
            assert (
                await _scalar(
                    wh, "SELECT count() FROM alarm_transitions FINAL WHERE domain = 'procurement'"
                )
                == 3
            )


async def test_every_procurement_file_shape_lands_in_the_tables_and_the_api(
    broker: EmbeddedBroker, clean_warehouse: Warehouse, settings: Settings
) -> None:
    """SPSE's tender listing and OCDS as publishers put it out (ISO-8859-1, JSON lines, a
    bare release, a record package, a buyer named only by name, a contract-only release),
    2010-2019 data, through the worker into ClickHouse and the API, nothing dead-lettered."""
    listings = [
        FIXTURES / "pyproc_readme_dt_lelang_pu_2019.json",
        FIXTURES / "pyproc_dt_lelang.json",
    ]
    files = ["release-package_encoding-iso-8859-1", "release-package_split", "compiled-release-1",
             "record-package-1", "release-package_1.0-1", "release-package_1.1-2"]  # fmt: skip
    packages = [FIXTURES / f"ocdskit_{name}.json" for name in files]
    async with running_worker(settings, broker.bootstrap, clean_warehouse):
        await run_connector(SpseReplaySource(listings, as_of=AS_OF), broker.bootstrap, None)
        await run_connector(OcdsReplaySource(packages), broker.bootstrap, None)
        async with api_client(settings, clean_warehouse, broker.bootstrap) as api:

            async def all_tenders() -> dict:  # type: ignore[type-arg]
                page = (await api.get("/v1/procurement/tenders", params={"limit": 100})).json()
                return page if page["total"] == 10 else {}

            page = await eventually(all_tenders, 90, "10 tenders")
            by_key = {t["tender_key"]: t for t in page["items"]}
            lelang = by_key["spse:lelang-48658064"]
            assert (lelang["method"], lelang["category"], lelang["year"], lelang["stage"]) == (
                "Seleksi", "Jasa Konsultansi Badan Usaha", 2019, "announced")  # fmt: skip
            assert lelang["estimate_amount"] == 1_700_000_000
            assert by_key["spse:lelang-10080116000"]["category"] == "Pengadaan Barang"
            latin1 = by_key["ocds:OCDS-87SD3T-SEFIN-DRM-AD-024-2016"]
            assert latin1["agency_name"] == "SECRETARÍA DE FINANZAS"
            assert latin1["title"] == "MANTENIMIENTO A MÁQUINA CORTADORA"
            named = by_key["ocds:ocds-03ad3f-193399"]
            assert (named["agency_id"], named["stage"], named["winner_name"]) == (
                "direccion-nacional-de-contrataciones-publicas-dncp", "awarded",
                "MASTER SOFT SRL")  # fmt: skip
            contract = by_key["ocds:ocds-03ad3f-246807"]
            assert (contract["stage"], contract["winner_id"]) == ("contract", "11-de-setiembre-srl")
            assert by_key["ocds:ocds-07smqs-993235"]["agency_id"] == "INAH-195"
            assert {"ocds:OCDS-87SD3T-AD-SF-DRM-063-2015",
                    "ocds:OCDS-87SD3T-AD-SF-DRM-065-2015"} <= set(by_key)  # fmt: skip
            events = await _scalar(
                clean_warehouse,
                "SELECT count() FROM procurement_events FINAL "
                "WHERE tender_key = 'ocds:ocds-03ad3f-246807'",
            )
            assert events == 1  # the contract, no empty announcement
    assert await _scalar(clean_warehouse, "SELECT count() FROM dead_letters") == 0
