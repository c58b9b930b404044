"""Replay of Open Contracting (OCDS) data: each release becomes ``announced`` (buyer,
method, estimate, tender period, number of tenderers), one ``bid`` per tenderer,
``awarded`` per active award and ``contract`` per contract.

What a file may hold, as publishers put it out: a release package, a record package (each
record's ``compiledRelease``, or its embedded releases, oldest first, when it has none), a
bare release or record, a JSON array of any of these, or several of them one after the
other (JSON lines, or concatenated JSON); gzip-compressed or not, in UTF-8 (with or without
a byte order mark), UTF-16, ISO-8859-1 or Windows-1252 (detected, or ``--encoding``).

Event ids come from the ocid and the award/contract/tenderer ids, not from the release,
so the several releases of one contracting process (and a replayed file) replace each
other's events instead of adding to them; the latest release read wins.

The buyer (the agency every event of a process is keyed by) is the release's ``buyer``, by
identifier, id or, failing both, its name; else the party with the ``buyer`` role; else the
procuring entity (field or role); else, for a release that does not say (a contract-only
release often does not), the buyer another release of the same ocid names anywhere in the
replay; else the payer of the contract's transactions; else, so that the release is not
lost, a buyer of its own, ``unknown-buyer:<ocid>``. Suppliers and tenderers named only by
name are identified by their name too. A release with no tender (a contract-only or
award-only release) gives no ``announced`` event, so it does not blank its tender's.

Currencies: an award is compared with the estimate only in the estimate's currency. When
the award's currency differs and the value carries an ``exchangeRate`` (as Mexico City's
publisher adds, an extension to the standard), the rate is taken as units of the tender's
currency per unit of the award's and passed on; without a rate the award is not compared.
An amount without a currency, or negative, is left out; the event is kept.

Times without an offset (the standard requires one; not every publisher gives it) are read
in ``SITROOM_TIMEZONE``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from connectors.base import Source
from connectors.publisher import KafkaPublisher
from connectors.textfile import UnreadableFile, decode
from schemas.catalog import TENDER_EVENTS
from schemas.procurement import TenderEvent, TenderKind, TenderSource, refusal, slug

log = logging.getLogger(__name__)
INACTIVE_AWARDS = {"pending", "cancelled", "unsuccessful"}
UNKNOWN_BUYER = "unknown-buyer"
WIB = ZoneInfo("Asia/Jakarta")  # SITROOM_TIMEZONE's default
MAX_RAW = 1 << 20  # a dead letter keeps at most this much of an unreadable file
_decoder = json.JSONDecoder()
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}  # fmt: skip

Org = tuple[str, str]  # (id, name)
Reject = tuple[str, str, str, bytes]  # (reason, detail, location, raw)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    """A non-empty text or number as text; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    return text or None


def _cut(value: Any, limit: int) -> str | None:
    text = _str(value)
    return text[:limit] if text else None


def _party(party: Any) -> tuple[str | None, str | None]:
    """A party's (or organization reference's) identifier and name as given."""
    p = _obj(party)
    identifier = _obj(p.get("identifier"))
    pid = _str(identifier.get("id")) or _str(p.get("id"))
    name = _str(p.get("name")) or _str(p.get("legalName")) or _str(identifier.get("legalName"))
    return pid, name


def _org(ref: Any, parties: Sequence[Any] = ()) -> Org | None:
    """An organization as (id, name): its own identifier or id, else those of the party it
    refers to (OCDS 1.1 references parties by id), else a slug of its name."""
    pid, name = _party(ref)
    if pid is None and name is None:
        return None
    ref_id = _str(_obj(ref).get("id"))
    for party in parties:
        party_id, party_name = _party(party)
        same = (ref_id and _str(_obj(party).get("id")) == ref_id) or (
            not ref_id and name and party_name == name
        )
        if same:
            # The party's registered identifier over a release-local reference id.
            ident = _str(_obj(_obj(party).get("identifier")).get("id"))
            pid = _str(_obj(_obj(ref).get("identifier")).get("id")) or ident or pid or party_id
            name = name or party_name
            break
    if pid:
        return pid[:128], name or ""
    key = slug(name or "")
    return (key, name or "") if key else None


def _role(parties: Sequence[Any], role: str) -> Org | None:
    for party in parties:
        if role in _list(_obj(party).get("roles")):
            org = _org(party)
            if org:
                return org
    return None


def named_buyer(release: dict[str, Any]) -> Org | None:
    """The buyer the release itself names: buyer, buyer role, procuring entity (field or role)."""
    parties = _list(release.get("parties"))
    tender = _obj(release.get("tender"))
    return (
        _org(release.get("buyer"), parties)
        or _role(parties, "buyer")
        or _org(tender.get("procuringEntity"), parties)
        or _role(parties, "procuringEntity")
    )


def _payer(release: dict[str, Any]) -> Org | None:
    """Who paid the contract's transactions (OCDS 1.1 ``payer``, 1.0 ``providerOrganization``)."""
    parties = _list(release.get("parties"))
    for contract in _list(release.get("contracts")):
        for tx in _list(_obj(_obj(contract).get("implementation")).get("transactions")):
            tx = _obj(tx)
            org = _org(tx.get("payer"), parties) or _org(tx.get("providerOrganization"), parties)
            if org:
                return org
    return None


def _date(value: Any, tz: tzinfo) -> datetime | None:
    """An ISO 8601 date or time; one without an offset is local time in ``tz``; None when
    missing or unreadable (the release goes on without it)."""
    text = _str(value)
    if not text:
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=tz)


def _money(value: Any, currency_fallback: str | None = None) -> tuple[float | None, str | None]:
    """(amount, currency) of an OCDS Value; (None, None) without a usable amount or currency."""
    v = _obj(value)
    raw = v.get("amount")
    amount: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        amount = float(raw)
    elif isinstance(raw, str):
        try:
            amount = float(raw.strip())
        except ValueError:
            amount = None
    currency = (_str(v.get("currency")) or currency_fallback or "").upper()
    if amount is None or not math.isfinite(amount) or amount < 0 or not _CURRENCY.match(currency):
        return None, None
    return amount, currency


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def release_events(release: dict[str, Any], connector: str = "ocds-replay",
                   known_buyer: Org | None = None,
                   tz: tzinfo = WIB) -> list[TenderEvent]:  # fmt: skip
    """The events of one release; ValueError (a sentence) or ValidationError when it cannot
    be mapped. ``known_buyer`` is the buyer of its ocid known from other releases."""
    ocid = _str(release.get("ocid"))
    if not ocid:
        raise ValueError("the release has no ocid (every OCDS release names its process)")
    tender = _obj(release.get("tender"))
    planning = _obj(release.get("planning"))
    parties = _list(release.get("parties"))
    agency = named_buyer(release) or known_buyer or _payer(release)
    if agency is None:
        agency = (f"{UNKNOWN_BUYER}:{ocid}"[:128], "")
    released = _date(release.get("date"), tz)
    period = _obj(tender.get("tenderPeriod"))
    start, end = _date(period.get("startDate"), tz), _date(period.get("endDate"), tz)
    if start and end and end < start:
        start = end = None  # a period that ends before it starts says nothing usable
    estimate, est_currency = _money(tender.get("value"))
    if estimate is None:
        estimate, est_currency = _money(_obj(planning.get("budget")).get("amount"))
    common: dict[str, Any] = {"source": TenderSource.OCDS, "tender_id": ocid,
                              "agency_id": agency[0], "agency_name": agency[1][:512],
                              "connector": connector}  # fmt: skip
    announced_at = start or released
    events: list[TenderEvent] = []
    if tender or planning:
        if announced_at is None:
            raise ValueError(
                f"{ocid}: no date to place the tender at (no release date, no tender period)"
            )
        events.append(TenderEvent(
            event_id=f"ocds:{ocid}/announced", kind=TenderKind.ANNOUNCED, ts=announced_at,
            title=_cut(tender.get("title"), 2000), method=_cut(tender.get("procurementMethod"), 128),
            category=_cut(tender.get("mainProcurementCategory"), 128),
            status=_cut(tender.get("status"), 128), year=announced_at.year,
            estimate_amount=estimate, estimate_currency=est_currency,
            tender_start=start, tender_end=end,
            bidders=_count(tender.get("numberOfTenderers")), **common,
        ))  # fmt: skip
    for tenderer in _list(tender.get("tenderers")):
        bidder = _org(tenderer, parties)
        if bidder and (end or announced_at):
            events.append(TenderEvent(
                event_id=f"ocds:{ocid}/bid/{bidder[0]}", kind=TenderKind.BID,
                ts=end or announced_at, bidder_id=bidder[0], bidder_name=bidder[1][:512] or None,
                **common,
            ))  # fmt: skip
    winners: dict[str, Org] = {}
    for i, award in enumerate(_list(release.get("awards"))):
        award = _obj(award)
        if _str(award.get("status")) in INACTIVE_AWARDS:
            continue
        award_id = _str(award.get("id")) or str(i)
        suppliers = [s for s in (_org(s, parties) for s in _list(award.get("suppliers"))) if s]
        if not suppliers:
            continue  # an award that names no supplier has no winner to report
        winner = ("+".join(s[0] for s in suppliers),  # a consortium wins as one
                  " + ".join(s[1] or s[0] for s in suppliers))  # fmt: skip
        winners[award_id] = winner
        amount, currency = _money(award.get("value"))
        rate = _obj(award.get("value")).get("exchangeRate") if currency != est_currency else None
        when = _date(award.get("date"), tz) or released or announced_at
        if when is None:
            raise ValueError(f"{ocid}: award {award_id!r} has no date and the release none")
        events.append(TenderEvent(
            event_id=f"ocds:{ocid}/award/{award_id}", kind=TenderKind.AWARDED, ts=when,
            winner_id=winner[0][:128], winner_name=winner[1][:512], amount=amount,
            currency=currency, exchange_rate=rate if isinstance(rate, int | float) and rate > 0
            else None, **common,
        ))  # fmt: skip
    for i, contract in enumerate(_list(release.get("contracts"))):
        contract = _obj(contract)
        contract_id = _str(contract.get("id")) or str(i)
        amount, currency = _money(contract.get("value"))
        contractor = winners.get(_str(contract.get("awardID")) or "")
        if contractor is None:  # the contract_suppliers extension names them on the contract
            named = [s for s in (_org(s, parties) for s in _list(contract.get("suppliers"))) if s]
            if named:
                contractor = ("+".join(s[0] for s in named),
                              " + ".join(s[1] or s[0] for s in named))  # fmt: skip
        signed = (_date(contract.get("dateSigned"), tz)
                  or _date(_obj(contract.get("period")).get("startDate"), tz))  # fmt: skip
        when = signed or released or announced_at
        if when is None:
            raise ValueError(f"{ocid}: contract {contract_id!r} has no date and the release none")
        events.append(TenderEvent(
            event_id=f"ocds:{ocid}/contract/{contract_id}", kind=TenderKind.CONTRACT, ts=when,
            winner_id=contractor[0][:128] if contractor else None,
            winner_name=contractor[1][:512] if contractor else None,
            amount=amount, currency=currency, status=_cut(contract.get("status"), 128), **common,
        ))  # fmt: skip
    if not events:
        raise ValueError(
            f"{ocid}: nothing to report (no tender, planning, active award or contract)"
        )
    return events


@dataclass(frozen=True)
class Found:
    """A release found in a file, and where."""

    where: str
    release: dict[str, Any]


def _kind(value: dict[str, Any]) -> str:
    if isinstance(value.get("records"), list):
        return "record package"
    if isinstance(value.get("releases"), list) and "ocid" not in value:
        return "release package"
    if "ocid" in value and (
        isinstance(value.get("compiledRelease"), dict)
        or ("releases" in value and "id" not in value and "date" not in value)
    ):
        return "record"
    if "ocid" in value:
        return "release"
    return ""


def _embedded(release: Any) -> bool:
    """A release in a record, not just a link to one (``url``, ``date``, ``tag``)."""
    return isinstance(release, dict) and "ocid" in release


def _record(record: dict[str, Any], where: str) -> Iterator[Found | Reject]:
    compiled = record.get("compiledRelease")
    if isinstance(compiled, dict):
        yield Found(f"{where}.compiledRelease", compiled)
        return
    releases = _list(record.get("releases"))
    embedded = [(j, r) for j, r in enumerate(releases) if _embedded(r)]
    if not embedded:
        ocid = _str(record.get("ocid")) or "a record"
        linked = "only links to its releases" if releases else "no releases"
        yield ("unparseable_record",
               f"{ocid}: the record has no compiled release and {linked}; replay the "
               f"release packages those links point to",
               where, json.dumps(record, ensure_ascii=False).encode()[:MAX_RAW])  # fmt: skip
        return
    # Oldest first, so that the latest release of the process is the one that stays.
    embedded.sort(key=lambda jr: str(jr[1].get("date") or ""))
    for j, release in embedded:
        yield Found(f"{where}.releases[{j}]", release)


def _items(value: Any, where: str, depth: int = 0) -> Iterator[Found | Reject]:
    """The releases in one top-level JSON value (a package, record, release or array)."""
    if isinstance(value, list) and depth == 0:
        for i, item in enumerate(value):
            yield from _items(item, f"{where}[{i}]", depth + 1)
        return
    kind = _kind(value) if isinstance(value, dict) else ""
    sep = ":" if depth == 0 else "."
    if kind == "release package":
        for i, release in enumerate(value["releases"]):
            if isinstance(release, dict):
                yield Found(f"{where}{sep}releases[{i}]", release)
            else:
                yield ("unparseable_release", "a release must be a JSON object",
                       f"{where}{sep}releases[{i}]", json.dumps(release).encode())  # fmt: skip
    elif kind == "record package":
        for i, record in enumerate(value["records"]):
            if isinstance(record, dict):
                yield from _record(record, f"{where}{sep}records[{i}]")
            else:
                yield ("unparseable_record", "a record must be a JSON object",
                       f"{where}{sep}records[{i}]", json.dumps(record).encode())  # fmt: skip
    elif kind == "record":
        yield from _record(value, where)
    elif kind == "release":
        yield Found(where, value)
    else:
        what = (f"an object with {', '.join(sorted(value)[:6]) or 'no keys'}"
                if isinstance(value, dict) else _JSON_TYPES.get(type(value), "a value"))  # fmt: skip
        yield ("not_ocds",
               f"not OCDS: {what}, not a release (no ocid) nor a package (no releases or "
               f"records array)",
               where, json.dumps(value, ensure_ascii=False).encode()[:MAX_RAW])  # fmt: skip


def _values(text: str) -> Iterator[tuple[int, Any, str | None, str]]:
    """Every top-level JSON value with its line: (line, value, problem, raw). A value that
    does not parse is returned with the problem in words, and reading resumes at the next
    line that starts a value in its first column (as in JSON lines)."""
    pos, end = 0, len(text)
    line, counted = 1, 0  # lines counted incrementally: a JSON lines file may be large
    while True:
        while pos < end and text[pos] in " \t\r\n\ufeff\x00":
            pos += 1
        if pos >= end:
            return
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, after = _decoder.raw_decode(text, pos)
            yield line, value, None, text[pos:after]
            pos = after
        except json.JSONDecodeError as exc:
            resume = _next_value(text, pos)
            problem = (f"not JSON: it breaks at line {exc.lineno}, column {exc.colno} "
                       f"({exc.msg[:1].lower() + exc.msg[1:]})")  # fmt: skip
            yield line, None, problem, text[pos:resume]
            pos = resume


def _next_value(text: str, pos: int) -> int:
    nl = text.find("\n", pos)
    while nl != -1:
        start = nl + 1
        if text.startswith(("{", "["), start):
            return start
        nl = text.find("\n", start)
    return len(text)


class OcdsReplaySource(Source):
    name = "ocds-replay"
    finite = True
    topic = TENDER_EVENTS

    def __init__(self, files: Sequence[Path], encoding: str | None = None,
                 tz: tzinfo = WIB) -> None:  # fmt: skip
        if not files:
            raise ValueError("give one or more OCDS files")
        self.files = list(files)
        self.encoding = encoding
        self.tz = tz
        self.buyers: dict[str, Org] = {}  # ocid → the buyer a release of it names
        self.releases_read = 0
        self.refused: Counter[str] = Counter()  # reason → records refused

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, TenderEvent)
        return event.agency_id

    def parse(self, path: Path) -> tuple[list[Found], list[Reject]]:
        """The releases of one file, and what could not be read ``(reason, detail,
        location, raw)``; the buyers the releases name are remembered for their ocids."""
        data = path.read_bytes()
        try:
            text, encoding = decode(data, self.encoding)
        except UnreadableFile as exc:
            return [], [("unreadable_file", f"{path.name}: {exc}", str(path), data[:MAX_RAW])]
        if encoding not in ("utf-8", "utf-8-sig") and not self.encoding:
            log.info("file read as %s", encoding, extra={"connector": self.name, "file": str(path)})
        values = list(_values(text))
        found: list[Found] = []
        rejects: list[Reject] = []
        if not values:
            return [], [("unreadable_file", f"{path.name} is empty", str(path), b"")]
        if len(values) == 1 and values[0][2] is not None:
            _, _, problem, raw = values[0]
            return [], [("unreadable_file", f"{path.name} is {problem}", str(path),
                         raw.encode()[:MAX_RAW])]  # fmt: skip
        for line, value, problem, raw in values:
            where = str(path) if len(values) == 1 else f"{path}:{line}"
            if problem is not None:
                rejects.append(("unparseable_release", problem, where, raw.encode()[:MAX_RAW]))
                continue
            for item in _items(value, where):
                if isinstance(item, Found):
                    found.append(item)
                else:
                    rejects.append(item)
        for item in found:
            ocid, buyer = _str(item.release.get("ocid")), named_buyer(item.release)
            if ocid and buyer:
                self.buyers.setdefault(ocid, buyer)
        return found, rejects

    def read(self, path: Path) -> tuple[list[TenderEvent], list[Reject]]:
        """Events and rejects ``(reason, detail, location, raw)`` of one file."""
        found, rejects = self.parse(path)
        self.releases_read += len(found)
        events: list[TenderEvent] = []
        unknown = 0
        for item in found:
            ocid = _str(item.release.get("ocid")) or ""
            try:
                mapped = release_events(item.release, self.name, self.buyers.get(ocid), self.tz)
            except ValidationError as exc:
                reject = f"{ocid}: {refusal(exc)}" if ocid else refusal(exc)
                rejects.append(("unparseable_release", reject, item.where, _raw(item.release)))
                continue
            except ValueError as exc:
                rejects.append(("unparseable_release", str(exc), item.where, _raw(item.release)))
                continue
            unknown += mapped[0].agency_id.startswith(f"{UNKNOWN_BUYER}:")
            events.extend(mapped)
        self.refused.update(r[0] for r in rejects)
        if unknown:
            log.warning("releases name no buyer; each is filed under unknown-buyer:<ocid>",
                        extra={"connector": self.name, "file": str(path), "releases": unknown})  # fmt: skip
        return events, rejects

    def emptiness(self) -> str:
        if self.releases_read:
            return ""
        why = ", ".join(f"{reason} {n:,}" for reason, n in self.refused.most_common())
        return "the files held no OCDS release" + (f" (refused: {why})" if why else "")

    async def batches(self, publisher: KafkaPublisher) -> AsyncIterator[Sequence[BaseModel]]:
        # The buyers of every file first: a contract-only release is then filed under the
        # buyer its tender release names, whichever file (or line) comes first.
        if len(self.files) > 1:
            for path in self.files:
                self.parse(path)
        for path in self.files:
            events, rejects = self.read(path)
            for reason, detail, where, raw in rejects:
                await publisher.dead_letter(raw, reason, detail, where)
            log.info("OCDS file replayed", extra={"connector": self.name, "file": str(path),
                                                  "events": len(events), "rejected": len(rejects)})  # fmt: skip
            yield events


def _raw(release: dict[str, Any]) -> bytes:
    return json.dumps(release, ensure_ascii=False).encode()[:MAX_RAW]
