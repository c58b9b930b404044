"""A deterministic simulator of LPSE Kota Semarang: the city's OPD (regional agencies)
procure by Tender, Pengadaan Langsung, Penunjukan Langsung and E-Purchasing.

To show a whole lifecycle within a demo, each tick reports packages that have just been
contracted: announcement, bids, award and contract, dated backwards from the tick. Some
are red flags on purpose: Dinas Pekerjaan Umum keeps awarding to one contractor, and now
and then a tender has a single bidder, an award at the owner's estimate (HPS) or a tender
period of a few days. What was injected is in :attr:`ProcurementSimulator.injected`.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from pydantic import BaseModel

from connectors.base import TickSource
from schemas.catalog import TENDER_EVENTS
from schemas.procurement import TenderEvent, TenderKind, TenderSource, slug

DAY = 86400.0
AGENCIES = (
    "Dinas Pekerjaan Umum Kota Semarang",
    "Dinas Kesehatan Kota Semarang",
    "Dinas Pendidikan Kota Semarang",
    "Dinas Perhubungan Kota Semarang",
    "Dinas Lingkungan Hidup Kota Semarang",
    "Dinas Perumahan dan Kawasan Permukiman Kota Semarang",
    "Badan Penanggulangan Bencana Daerah Kota Semarang",
    "RSUD K.R.M.T. Wongsonegoro",
    "Dinas Komunikasi, Informatika, Statistik dan Persandian Kota Semarang",
    "Dinas Pemadam Kebakaran Kota Semarang",
)
FAVOURED_AGENCY = AGENCIES[0]
SUPPLIERS = (
    "CV Karya Mandiri", "PT Tirta Jaya Konstruksi", "CV Sinar Semarang", "PT Bangun Jateng",
    "CV Mitra Usaha Tembalang", "PT Medika Nusantara", "CV Cahaya Pandanaran",
    "PT Data Prima Informatika", "CV Rejeki Banyumanik", "PT Sarana Kaligawe",
)  # fmt: skip
FAVOURED_SUPPLIER = SUPPLIERS[0]
BACKFILL_DAYS = 60
METHODS = (("Tender", 0.35), ("Pengadaan Langsung", 0.35), ("Penunjukan Langsung", 0.1),
           ("E-Purchasing", 0.2))  # fmt: skip
CATEGORIES = ("Pekerjaan Konstruksi", "Pengadaan Barang", "Jasa Konsultansi", "Jasa Lainnya")


def supplier_id(name: str) -> str:
    return "npwp-" + slug(name)  # simulated: a stable stand-in for the supplier's NPWP


class ProcurementSimulator(TickSource):
    name = "procurement-simulator"
    topic = TENDER_EVENTS

    def __init__(self, seed: int = 7, interval_s: float = 30.0, start: float | None = None,
                 duration_s: float | None = None, realtime: bool = True,
                 packages_per_tick: float = 0.6, backfill: int = 0) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        # Packages of the past BACKFILL_DAYS reported at the first tick, so a fresh run
        # already has statistics and red flags to show.
        self.backfill = backfill
        self._clock(interval_s, start, duration_s, realtime)
        self.packages_per_tick = packages_per_tick
        self.next_code = 10_000_000 + seed * 1000
        self.injected: dict[str, list[str]] = {}  # tender key → red flags meant

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, TenderEvent)
        return event.agency_id

    def _package(self, t: float) -> list[TenderEvent]:
        rng = self.rng
        self.next_code += 1
        agency = rng.choice(AGENCIES)
        method = rng.choices([m for m, _ in METHODS], [w for _, w in METHODS])[0]
        tender_id = f"semarang-{self.next_code}"
        flags: list[str] = []
        hps = round(rng.uniform(50, 5000) * 1e6, -5)
        period_days = rng.uniform(7, 14) if method == "Tender" else rng.uniform(1, 3)
        if method == "Tender" and rng.random() < 0.1:
            period_days = rng.uniform(1, 3)
            flags.append("tender_period_short")
        if method == "Tender":
            n_bidders = 1 if rng.random() < 0.15 else rng.randint(2, 7)
            if n_bidders == 1:
                flags.append("tender_single_bidder")
        else:
            n_bidders = 0 if method == "E-Purchasing" else 1
        bidders = rng.sample(SUPPLIERS, max(n_bidders, 1))
        winner = bidders[0]
        if agency == FAVOURED_AGENCY and rng.random() < 0.6:
            winner = FAVOURED_SUPPLIER
            bidders = [winner, *[b for b in bidders if b != winner]][: max(n_bidders, 1)]
        ratio = rng.uniform(0.8, 0.97)
        if method == "E-Purchasing":
            ratio = 1.0  # catalogue price
        elif method == "Tender" and rng.random() < 0.15:
            ratio = rng.uniform(0.991, 1.0)
            flags.append("award_near_hps")
        contract_at = t
        award_at = contract_at - rng.uniform(1, 5) * DAY
        end = award_at - rng.uniform(1, 7) * DAY
        start = end - period_days * DAY
        self.injected[f"spse:{tender_id}"] = flags
        common = {"source": TenderSource.SPSE, "tender_id": tender_id, "agency_id": slug(agency),
                  "agency_name": agency, "connector": self.name}  # fmt: skip

        def at(ts: float) -> datetime:
            return datetime.fromtimestamp(round(ts, 3), UTC)

        events = [TenderEvent(
            event_id=f"spse:{tender_id}/announced", kind=TenderKind.ANNOUNCED, ts=at(start),
            title=f"Paket {rng.choice(CATEGORIES).lower()} {self.next_code}", method=method,
            category=rng.choice(CATEGORIES), year=at(start).year, status="Tender Sudah Selesai",
            estimate_amount=hps, estimate_currency="IDR", tender_start=at(start),
            tender_end=at(end), bidders=n_bidders, **common,
        )]  # fmt: skip
        for i, bidder in enumerate(bidders[:n_bidders]):
            events.append(TenderEvent(
                event_id=f"spse:{tender_id}/bid/{supplier_id(bidder)}", kind=TenderKind.BID,
                ts=at(start + (end - start) * (i + 1) / (n_bidders + 1)),
                bidder_id=supplier_id(bidder), bidder_name=bidder,
                amount=round(hps * rng.uniform(ratio, 1.0), -3), currency="IDR", **common,
            ))  # fmt: skip
        award = round(hps * ratio, -3)
        events.append(TenderEvent(
            event_id=f"spse:{tender_id}/award/1", kind=TenderKind.AWARDED, ts=at(award_at),
            winner_id=supplier_id(winner), winner_name=winner, amount=award, currency="IDR",
            **common,
        ))  # fmt: skip
        events.append(TenderEvent(
            event_id=f"spse:{tender_id}/contract/1", kind=TenderKind.CONTRACT, ts=at(contract_at),
            winner_id=supplier_id(winner), winner_name=winner, amount=award, currency="IDR",
            **common,
        ))  # fmt: skip
        return events

    def events_at(self, t: float) -> list[TenderEvent]:
        past = [t - BACKFILL_DAYS * DAY * k / self.backfill for k in range(self.backfill, 0, -1)]
        self.backfill = 0
        n = int(self.packages_per_tick) + (self.rng.random() < self.packages_per_tick % 1)
        return [e for at in [*past, *[t] * n] for e in self._package(at)]
