"""Replay of Open Contracting (OCDS) release packages: each release becomes ``announced``
(buyer, method, estimate, tender period, number of tenderers), one ``bid`` per tenderer,
``awarded`` per active award and ``contract`` per contract.

Event ids come from the ocid and the award/contract/tenderer ids, not from the release,
so the several releases of one contracting process (and a replayed file) replace each
other's events instead of adding to them; the latest release read wins.

Currencies: an award is compared with the estimate only in the estimate's currency. When
the award's currency differs and the value carries an ``exchangeRate`` (as Mexico City's
publisher adds, an extension to the standard), the rate is taken as units of the tender's
currency per unit of the award's and passed on; without a rate the award is not compared.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from connectors.base import Source
from connectors.publisher import KafkaPublisher
from schemas.catalog import TENDER_EVENTS
from schemas.procurement import TenderEvent, TenderKind, TenderSource

log = logging.getLogger(__name__)
INACTIVE_AWARDS = {"pending", "cancelled", "unsuccessful"}


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _party(party: Any) -> tuple[str | None, str | None]:
    p = _obj(party)
    pid = _obj(p.get("identifier")).get("id") or p.get("id")
    return (str(pid) if pid else None), p.get("name")


def _date(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def release_events(release: dict[str, Any], connector: str = "ocds-replay") -> list[TenderEvent]:
    """The events of one release; ValueError/ValidationError when it cannot be mapped."""
    ocid = release.get("ocid")
    if not isinstance(ocid, str) or not ocid:
        raise ValueError("release without ocid")
    tender = _obj(release.get("tender"))
    agency_id, agency_name = _party(release.get("buyer"))
    if not agency_id:
        agency_id, agency_name = _party(tender.get("procuringEntity"))
    if not agency_id:
        raise ValueError(f"{ocid}: no buyer or procuring entity identifier")
    released = _date(release.get("date"))
    period = _obj(tender.get("tenderPeriod"))
    start, end = _date(period.get("startDate")), _date(period.get("endDate"))
    value = _obj(tender.get("value")) or _obj(_obj(release.get("planning")).get("budget")).get(
        "amount"
    )
    estimate = _obj(value)
    est_currency = estimate.get("currency") if estimate.get("amount") is not None else None
    announced_at = start or released
    if announced_at is None:
        raise ValueError(f"{ocid}: no release date and no tender period")
    common: dict[str, Any] = {"source": TenderSource.OCDS, "tender_id": ocid,
                              "agency_id": agency_id, "agency_name": agency_name or "",
                              "connector": connector}  # fmt: skip
    bidders = tender.get("numberOfTenderers")
    events = [
        TenderEvent(
            event_id=f"ocds:{ocid}/announced", kind=TenderKind.ANNOUNCED, ts=announced_at,
            title=tender.get("title"), method=tender.get("procurementMethod"),
            category=tender.get("mainProcurementCategory"), status=tender.get("status"),
            year=announced_at.year,
            estimate_amount=estimate.get("amount") if est_currency else None,
            estimate_currency=est_currency, tender_start=start, tender_end=end,
            bidders=bidders if isinstance(bidders, int) else None, **common,
        )
    ]  # fmt: skip
    for tenderer in tender.get("tenderers") or []:
        bidder_id, bidder_name = _party(tenderer)
        if bidder_id:
            events.append(TenderEvent(
                event_id=f"ocds:{ocid}/bid/{bidder_id}", kind=TenderKind.BID,
                ts=end or announced_at, bidder_id=bidder_id, bidder_name=bidder_name, **common,
            ))  # fmt: skip
    winners: dict[str, tuple[str | None, str | None]] = {}
    for award in release.get("awards") or []:
        award = _obj(award)
        if award.get("status") in INACTIVE_AWARDS:
            continue
        suppliers = [_party(s) for s in award.get("suppliers") or []]
        suppliers = [s for s in suppliers if s[0]]
        if not suppliers:
            raise ValueError(f"{ocid}: award {award.get('id')!r} names no supplier")
        winner_id = "+".join(str(s[0]) for s in suppliers)  # a consortium wins as one
        winner_name = " + ".join(s[1] or str(s[0]) for s in suppliers)
        winners[str(award.get("id"))] = (winner_id, winner_name)
        amount = _obj(award.get("value"))
        currency = amount.get("currency")
        rate = amount.get("exchangeRate") if currency != est_currency else None
        events.append(TenderEvent(
            event_id=f"ocds:{ocid}/award/{award.get('id')}", kind=TenderKind.AWARDED,
            ts=_date(award.get("date")) or released or announced_at,
            winner_id=winner_id, winner_name=winner_name, amount=amount.get("amount"),
            currency=currency if amount.get("amount") is not None else None,
            exchange_rate=rate or None, **common,
        ))  # fmt: skip
    for contract in release.get("contracts") or []:
        contract = _obj(contract)
        amount = _obj(contract.get("value"))
        contractor = winners.get(str(contract.get("awardID")), (None, None))
        signed = _date(contract.get("dateSigned")) or _date(
            _obj(contract.get("period")).get("startDate")
        )
        events.append(TenderEvent(
            event_id=f"ocds:{ocid}/contract/{contract.get('id')}", kind=TenderKind.CONTRACT,
            ts=signed or released or announced_at, winner_id=contractor[0], winner_name=contractor[1],
            amount=amount.get("amount"),
            currency=amount.get("currency") if amount.get("amount") is not None else None,
            status=contract.get("status"), **common,
        ))  # fmt: skip
    return events


class OcdsReplaySource(Source):
    name = "ocds-replay"
    finite = True
    topic = TENDER_EVENTS

    def __init__(self, files: Sequence[Path]) -> None:
        if not files:
            raise ValueError("give one or more release package files")
        self.files = list(files)

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, TenderEvent)
        return event.agency_id

    def read(self, path: Path) -> tuple[list[TenderEvent], list[tuple[str, str, str, bytes]]]:
        """Events and rejects ``(reason, detail, location, raw)`` of one package file."""
        data = path.read_bytes()
        try:
            package = json.loads(data)
            releases = package["releases"] if isinstance(package, dict) else None
            if not isinstance(releases, list):
                raise ValueError("not a release package: no releases array")
        except (ValueError, KeyError) as exc:
            return [], [("unreadable_file", str(exc)[:300], str(path), data)]
        events: list[TenderEvent] = []
        rejects: list[tuple[str, str, str, bytes]] = []
        for i, release in enumerate(releases):
            where = f"{path}:releases[{i}]"
            raw = json.dumps(release, ensure_ascii=False).encode()
            try:
                if not isinstance(release, dict):
                    raise ValueError("a release must be an object")
                events.extend(release_events(release, self.name))
            except ValidationError as exc:
                err = exc.errors()[0]
                detail = f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
                rejects.append(("unparseable_release", detail, where, raw))
            except (ValueError, TypeError) as exc:
                rejects.append(("unparseable_release", str(exc)[:300], where, raw))
        return events, rejects

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        for path in self.files:
            events, rejects = self.read(path)
            for reason, detail, where, raw in rejects:
                await publisher.dead_letter(raw, reason, detail, where)
            log.info("release package replayed", extra={"connector": self.name, "file": str(path),
                                                         "events": len(events), "rejected": len(rejects)})  # fmt: skip
            yield events
