"""E-procurement: tender lifecycle events become one current row per tender, a row per
event, and red flags (single bidder, award near the owner's estimate, a tender period too
short for its method, one supplier winning again and again at one agency).

Flags are one-shot findings: each is raised once per tender (or per agency and winner
while the alarm is open) and stays until staff acknowledge and clear it; the tender
remembers its flags, so a replayed or repeated release never raises one again. A tender's
findings are judged once its own clock, less the lateness, has passed their evidence (the
period's announcement, the award), so terms amended within the lateness or bids that come
just after the award are part of the judgement whatever order they arrived in.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import RuleBook
from schemas.alarms import Reason as AlarmReason
from schemas.deadletter import Reason
from schemas.procurement import STAGE_RANK, TenderEvent, TenderKind
from schemas.settings import Settings
from streams.alarm_engine import AlarmEngine, Context, EngineState
from streams.checkpoints import Checkpoints
from streams.partition import ItemPartition
from streams.pipeline import Emitted, Pipeline, Producer, StateKey
from streams.sink import BaseSink
from streams.validation import future_problem
from streams.windows import settled_until

SINGLE_BIDDER = "tender_single_bidder"
NEAR_HPS = "award_near_hps"
PERIOD_SHORT = "tender_period_short"
REPEATED_WINNER = "repeated_winner"
DAY_S = 86400.0
MAX_BIDDERS_KEPT = 1000
MAX_PERIODS_KEPT = 50


@dataclass
class Tender:
    source: str
    tender_id: str
    agency_id: str
    agency_name: str = ""
    title: str | None = None
    method: str | None = None
    category: str | None = None
    year: int | None = None
    status: str | None = None
    stage: str = TenderKind.ANNOUNCED.value
    estimate_amount: float | None = None
    estimate_currency: str | None = None
    tender_start: float | None = None
    tender_end: float | None = None
    bidders_reported: int | None = None
    bidder_ids: list[str] = field(default_factory=list)
    winner_id: str | None = None
    winner_name: str | None = None
    award_amount: float | None = None
    award_currency: str | None = None
    award_rate: float | None = None
    contract_amount: float | None = None
    contract_currency: str | None = None
    flags: list[str] = field(default_factory=list)
    # Per field (or group of fields that travel together), the (ts, stage rank, event id)
    # of the event that set it: the newest event in event time wins whatever the arrival.
    set_by: dict[str, tuple[float, int, str]] = field(default_factory=dict)
    # Per flag, the finding: (alarm entity, its time, value, threshold, detail). Its row
    # also shows the tender as it stands, so it is written again when either changes.
    findings: dict[str, tuple[str, float, float, float, str]] = field(default_factory=dict)
    findings_crc: int = 0
    award_ts: float | None = None  # when the current winner was named
    win_pending: bool = False  # a win (or its date) changed and is not yet counted
    period_ts: float | None = None  # when the current tender period was announced
    # Every (time, start, end) a tender period was announced with, in event time: a period
    # is judged on its own once it was in force for the lateness (not amended within it).
    periods: list[tuple[float, float, float]] = field(default_factory=list)
    periods_judged: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0
    seen_at: float = 0.0  # wall time at which last_ts last advanced
    arrived_at: float = 0.0  # wall time of its last event
    version: int = 0
    touched: float = 0.0  # wall clock of the last change: retention is by processing time

    @property
    def key(self) -> str:
        return f"{self.source}:{self.tender_id}"

    def bidders(self) -> int | None:
        seen = len(self.bidder_ids)
        if self.bidders_reported is None:
            return seen or None
        return max(self.bidders_reported, seen)

    def days(self) -> float | None:
        if self.tender_start is None or self.tender_end is None:
            return None
        return (self.tender_end - self.tender_start) / DAY_S

    def award_in_estimate_currency(self) -> float | None:
        """The award in the estimate's currency: as is when the currencies match, through
        the source's exchange rate when they differ, else unknown (never compared)."""
        if self.award_amount is None or self.estimate_currency is None:
            return None
        if self.award_currency == self.estimate_currency:
            return self.award_amount
        if self.award_rate is not None:
            return self.award_amount * self.award_rate
        return None

    def award_ratio(self) -> float | None:
        converted = self.award_in_estimate_currency()
        if converted is None or not self.estimate_amount:
            return None
        return converted / self.estimate_amount


@dataclass
class Win:
    tender_key: str
    ts: float
    count: int = 0  # wins of the pair within the window up to this one, in event time


@dataclass
class ProcurementState:
    offset: int = -1
    tenders: dict[str, Tender] = field(default_factory=dict)
    wins: dict[str, list[Win]] = field(default_factory=dict)  # "agency/winner" → awards
    unjudged: list[str] = field(default_factory=list)  # tenders with findings still to judge
    max_ts: float | None = None
    alarms: EngineState = field(default_factory=EngineState)


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


class ProcurementPartition(ItemPartition[TenderEvent]):
    model = TenderEvent

    def __init__(self, settings: Settings, book: RuleBook, saved: bytes | None = None) -> None:
        self.settings = settings
        self.cfg = book.procurement
        self.state = (
            msgspec.json.decode(saved, type=ProcurementState) if saved else ProcurementState()
        )
        self.alarms = AlarmEngine(book, self.state.alarms)
        self.lateness = settings.window_allowed_lateness_s
        self._dirty: dict[str, Tender] = {}

    def order(self, items: list[TenderEvent]) -> list[TenderEvent]:
        # Within one moment, the lifecycle order: a release's bids before its award.
        return sorted(items, key=lambda e: (e.ts, STAGE_RANK[e.kind]))

    def apply(self, ev: TenderEvent, now: datetime, out: Emitted) -> tuple[Reason, str] | None:
        future = future_problem(ev.ts, now, self.settings.max_future_s)
        if future:
            return future
        ts = ev.ts.timestamp()
        self.state.max_ts = max(self.state.max_ts or ts, ts)
        t = self.state.tenders.get(ev.key)
        if t is None:
            t = self.state.tenders[ev.key] = Tender(ev.source.value, ev.tender_id, ev.agency_id,
                                                    first_ts=ts, last_ts=ts)  # fmt: skip
        elif t.agency_id != ev.agency_id:
            return Reason.IMPOSSIBLE_VALUE, (
                f"tender {ev.key} belongs to agency {t.agency_id!r}, event says {ev.agency_id!r}"
            )
        wall = now.timestamp()
        if ts > t.last_ts or t.arrived_at == 0.0:
            t.seen_at = wall
        t.arrived_at = wall
        new_win = self._merge(t, ev, ts)
        t.version = max(int(now.timestamp() * 1_000_000), t.version + 1)
        t.touched = now.timestamp()
        self._dirty[t.key] = t
        party_id, party_name = (
            (ev.bidder_id, ev.bidder_name) if ev.kind is TenderKind.BID
            else (ev.winner_id, ev.winner_name)
        )  # fmt: skip
        out.add(ddl.PROCUREMENT_EVENTS, ddl.TENDER_EVENT_COLUMNS,
                [(ev.event_id, t.key, ev.kind.value, ev.ts, ev.source.value, ev.agency_id,
                  party_id, party_name, ev.amount, ev.currency or "", ev.connector)])  # fmt: skip
        if t.key not in self.state.unjudged:
            self.state.unjudged.append(t.key)
        if new_win:
            t.win_pending = True  # counted once the award has settled (see _judge)
        return None

    def _merge(self, t: Tender, ev: TenderEvent, ts: float) -> bool:
        """Fold an event into the tender, each field from the newest event (in event time)
        that carries it; True when the winner or the time it was named changed."""
        t.first_ts, t.last_ts = min(t.first_ts, ts), max(t.last_ts, ts)
        stamp = (ts, STAGE_RANK[ev.kind], ev.event_id)

        def newest(group: str) -> bool:
            if group in t.set_by and tuple(t.set_by[group]) > stamp:
                return False
            t.set_by[group] = stamp
            return True

        for name in ("title", "method", "category", "year", "status"):
            value = getattr(ev, name)
            if value is not None and newest(name):
                setattr(t, name, value)
        if ev.agency_name and newest("agency_name"):
            t.agency_name = ev.agency_name
        if STAGE_RANK[ev.kind] > STAGE_RANK[TenderKind(t.stage)]:
            t.stage = ev.kind.value
        if ev.estimate_amount is not None and newest("estimate"):
            t.estimate_amount, t.estimate_currency = ev.estimate_amount, ev.estimate_currency
        if ev.tender_start is not None and ev.tender_end is not None:
            period = (_ts(ev.tender_start), _ts(ev.tender_end))
            # Dated by the first event (in event time) that announced the period it has now.
            announced = (ts, *period)
            if announced not in t.periods and len(t.periods) < MAX_PERIODS_KEPT:
                t.periods.append(announced)  # type: ignore[arg-type]
                t.periods.sort()
            if period == (t.tender_start, t.tender_end) and t.period_ts is not None:
                t.period_ts = min(t.period_ts, ts)
                newest("period")
            elif newest("period"):
                (t.tender_start, t.tender_end), t.period_ts = period, ts
        if ev.bidders is not None and newest("bidders"):
            t.bidders_reported = ev.bidders
        if ev.kind is TenderKind.BID and ev.bidder_id and ev.bidder_id not in t.bidder_ids:
            if len(t.bidder_ids) < MAX_BIDDERS_KEPT:
                t.bidder_ids.append(ev.bidder_id)
        before = (t.winner_id, t.award_ts)
        # The win is dated by the first event (in event time) naming the current winner.
        same_winner = t.award_ts is not None and ev.winner_id == t.winner_id
        if ev.kind is TenderKind.AWARDED and newest("award"):
            t.winner_id, t.winner_name = ev.winner_id, ev.winner_name
            t.award_amount, t.award_currency = ev.amount, ev.currency
            t.award_rate = ev.exchange_rate
            t.award_ts = min(t.award_ts, ts) if same_winner and t.award_ts else ts
        elif ev.kind is TenderKind.CONTRACT and newest("contract"):
            t.contract_amount, t.contract_currency = ev.amount, ev.currency
            # A contract names the winner only of a tender whose award is not known.
            if ev.winner_id and "award" not in t.set_by:
                t.winner_id, t.winner_name = ev.winner_id, ev.winner_name
                t.award_ts = min(t.award_ts, ts) if same_winner and t.award_ts else ts
        elif (
            same_winner
            and t.award_ts
            and (ev.kind is TenderKind.AWARDED or "award" not in t.set_by)
        ):
            t.award_ts = min(t.award_ts, ts)
        return t.winner_id is not None and (t.winner_id, t.award_ts) != before

    def _context(self, t: Tender) -> Context:
        return {"tender_key": t.key, "title": (t.title or "")[:200], "agency_id": t.agency_id,
                "agency": t.agency_name, "method": t.method, "winner": t.winner_name}  # fmt: skip

    def _flag(self, kind: str, entity: str, t: Tender, ts: float, value: float,
              threshold: float, detail: str, out: Emitted) -> None:  # fmt: skip
        t.findings[kind] = (entity, ts, value, threshold, detail)
        self._dirty[t.key] = t
        context = {**self._context(t), "measured": round(value, 4), "limit": threshold,
                   "detail": detail}  # fmt: skip
        out.alarms.extend(self.alarms.observe(kind, entity, ts, 1.0, context))

    def _judge(self, now: datetime, out: Emitted) -> bool:
        """Judge the findings of tenders whose evidence has settled; True if any changed."""
        wall, changed, still = now.timestamp(), False, []
        judged: list[tuple[Tender, int]] = []  # with its number of flags before
        wins: list[Tender] = []
        for key in self.state.unjudged:
            t = self.state.tenders.get(key)
            if t is None:
                continue
            settled = settled_until(t.last_ts, t.seen_at, t.arrived_at, wall, self.lateness)
            judged.append((t, len(t.flags)))
            self._check_tender(t, settled, out)
            if t.win_pending and t.award_ts is not None and t.award_ts + self.lateness < settled:
                # A contract may name the winner before the award (seconds earlier in
                # event time) arrives: the win is counted, and dated, once both are in.
                t.win_pending = False
                wins.append(t)
            if settled <= t.last_ts + self.lateness or t.win_pending:
                still.append(key)
        # Wins settled together are counted in event time, not in the order their tenders
        # first arrived: the alarm engine takes no sample older than its last, so a later
        # win judged first would swallow the raise of an earlier one that makes the count.
        for t in sorted(wins, key=lambda t: (t.award_ts or 0.0, t.key)):
            self._check_winner(t, out)
        for t, flags in judged:
            if len(t.flags) != flags:
                t.version = max(int(wall * 1_000_000), t.version + 1)
                changed = True
        changed |= len(still) != len(self.state.unjudged)
        self.state.unjudged = still
        return changed

    def _check_tender(self, t: Tender, settled: float, out: Emitted) -> None:
        # A finding is dated by its evidence (the period's announcement, the award), not by
        # whichever event completed it, so its row and alarm id do not depend on arrival;
        # and judged once that evidence has settled, on the tender as it then stands.
        cfg = self.cfg
        award_ts = t.award_ts if t.award_ts is not None else t.last_ts
        self._check_periods(t, settled, out)
        awarded = STAGE_RANK[TenderKind(t.stage)] >= STAGE_RANK[TenderKind.AWARDED]
        if not awarded or not cfg.competitive(t.method) or award_ts + self.lateness >= settled:
            return
        bidders = t.bidders()
        if SINGLE_BIDDER not in t.flags and bidders and bidders <= cfg.single_bidder_max:
            t.flags.append(SINGLE_BIDDER)
            self._flag(SINGLE_BIDDER, t.key, t, award_ts, bidders, cfg.single_bidder_max,
                       f"{bidders} bidder(s) in a {t.method} tender", out)  # fmt: skip
        ratio = t.award_ratio()
        if NEAR_HPS not in t.flags and ratio is not None and ratio >= cfg.near_hps_ratio:
            t.flags.append(NEAR_HPS)
            converted = "" if t.award_currency == t.estimate_currency else (
                f" ({t.award_amount:,.2f} {t.award_currency} at {t.award_rate:g})")  # fmt: skip
            self._flag(NEAR_HPS, t.key, t, award_ts, ratio, cfg.near_hps_ratio,
                       f"award {ratio:.2%} of the estimate {t.estimate_amount:,.2f}"
                       f" {t.estimate_currency}{converted}", out)  # fmt: skip

    def _check_periods(self, t: Tender, settled: float, out: Emitted) -> None:
        """Each announced period in turn, once the lateness after it has settled: one that
        was then still in force (not amended within the lateness) and is too short for the
        method is flagged, dated by its announcement."""
        floor = self.cfg.min_days(t.method)
        runs = [p for i, p in enumerate(t.periods) if i == 0 or p[1:] != t.periods[i - 1][1:]]
        while t.periods_judged < len(runs):
            ts, start, end = runs[t.periods_judged]
            if ts + self.lateness >= settled:
                return
            nxt = runs[t.periods_judged + 1] if t.periods_judged + 1 < len(runs) else None
            t.periods_judged += 1
            if nxt is not None and nxt[0] <= ts + self.lateness:
                continue  # amended before it was in force
            days = (end - start) / DAY_S
            if PERIOD_SHORT not in t.flags and floor is not None and days < floor:
                t.flags.append(PERIOD_SHORT)
                self._flag(PERIOD_SHORT, t.key, t, ts, days, floor,
                           f"tender period {days:.1f} days; {t.method} needs {floor:g}", out)  # fmt: skip

    def _check_winner(self, t: Tender, out: Emitted) -> None:
        """Count each win of the pair among its wins up to it (in event time, within the
        window): a late earlier win raises the counts of the wins after it, so the tenders
        flagged and their counts do not depend on the order the awards arrived in."""
        assert t.winner_id is not None and t.award_ts is not None
        entity = f"{t.agency_id}/{t.winner_id}"
        wins = self.state.wins.setdefault(entity, [])
        mine = next((w for w in wins if w.tender_key == t.key), None)
        if mine is None:
            wins.append(Win(t.key, t.award_ts))
        else:
            mine.ts = t.award_ts
        wins.sort(key=lambda w: (w.ts, w.tender_key))
        window = self.cfg.repeated_winner_window_days * DAY_S
        for i, w in enumerate(wins):
            count = sum(1 for u in wins[: i + 1] if w.ts - u.ts <= window)
            if count == w.count:
                continue
            w.count = count
            won = self.state.tenders.get(w.tender_key)
            if count < self.cfg.repeated_winner_awards or won is None:
                continue
            if REPEATED_WINNER not in won.flags:
                won.flags.append(REPEATED_WINNER)
                self._dirty[won.key] = won
            # The winner's id, not a name: a contract may name the winner before the
            # award brings its name, and the finding must read the same either way.
            self._flag(REPEATED_WINNER, entity, won, w.ts, count,
                       self.cfg.repeated_winner_awards,
                       f"{won.winner_id}: {count} awards at {won.agency_name or won.agency_id}"
                       f" within {self.cfg.repeated_winner_window_days:g} days", out)  # fmt: skip

    def after(self, applied: list[TenderEvent], now: datetime, out: Emitted) -> None:
        self._judge(now, out)
        self._write(out)

    def _write(self, out: Emitted) -> None:
        out.add(ddl.PROCUREMENT_TENDERS, ddl.TENDER_COLUMNS,
                [self._row(t) for t in self._dirty.values()])  # fmt: skip
        for t in self._dirty.values():
            rows = [(kind, entity, t.key, t.agency_id, t.agency_name, t.method or "",
                     t.winner_id, t.winner_name, _dt(ts), value, threshold, detail)
                    for kind, (entity, ts, value, threshold, detail) in sorted(t.findings.items())]  # fmt: skip
            crc = zlib.crc32(repr(rows).encode())
            if crc != t.findings_crc:
                t.findings_crc = crc
                out.add(ddl.PROCUREMENT_FLAGS, ddl.FLAG_COLUMNS, rows)
        self._dirty.clear()

    @staticmethod
    def _row(t: Tender) -> tuple[Any, ...]:
        days, converted, ratio = t.days(), t.award_in_estimate_currency(), t.award_ratio()
        return (t.key, t.source, t.tender_id, t.agency_id, t.agency_name, t.title,
                t.method or "", t.category or "", t.year, t.status or "", t.stage,
                t.estimate_amount, t.estimate_currency or "", _dt(t.tender_start),
                _dt(t.tender_end), days, t.bidders(), t.winner_id, t.winner_name,
                t.award_amount, t.award_currency or "", converted, ratio, t.contract_amount,
                t.contract_currency or "", sorted(t.flags), _dt(t.first_ts), _dt(t.last_ts),
                t.version)  # fmt: skip

    def tick(self, now: datetime, out: Emitted) -> bool:
        """Forget tenders nobody touched for the retention period and wins past the window.

        A forgotten tender's open flags, and a forgotten supplier's repeated-winner alarm,
        are cleared (reason silence): no later event could clear them, and their machines
        would otherwise stay in state for ever."""
        changed = self._judge(now, out)
        self._write(out)
        now_ts = now.timestamp()
        retention = self.cfg.state_retention_days * DAY_S
        for key in [k for k, t in self.state.tenders.items() if t.touched < now_ts - retention]:
            t = self.state.tenders.pop(key)
            for kind in t.flags:
                if kind != REPEATED_WINNER:
                    out.alarms.extend(self.alarms.forget(kind, key, now_ts, AlarmReason.SILENCE))
            changed = True
        window = self.cfg.repeated_winner_window_days * DAY_S
        # A supplier's wins are kept while its newest win is within the retention (event
        # time) of the newest event; the window alone would keep one win per pair for ever.
        keep_s = max(window, retention)
        for entity, wins in list(self.state.wins.items()):
            newest = max(w.ts for w in wins)
            if self.state.max_ts is not None and self.state.max_ts - newest > keep_s:
                del self.state.wins[entity]
                forgotten = self.alarms.forget(
                    REPEATED_WINNER, entity, self.state.max_ts, AlarmReason.SILENCE
                )
                out.alarms.extend(forgotten)
                changed = True
                continue
            kept = [w for w in wins if newest - w.ts <= window]
            if len(kept) != len(wins):
                changed = True
                self.state.wins[entity] = kept
        if self.state.max_ts is not None:
            before = len(self.state.alarms.machines)
            out.alarms.extend(self.alarms.sweep(self.state.max_ts))
            changed = changed or len(self.state.alarms.machines) != before
        return changed


def procurement_pipeline(
    settings: Settings, book: RuleBook, sink: BaseSink, checkpoints: Checkpoints,
    producer: Producer, highwater: Callable[[str, int], int | None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Pipeline:  # fmt: skip
    def factory(key: StateKey, saved: bytes | None) -> ProcurementPartition:
        return ProcurementPartition(settings, book, saved)

    return Pipeline(
        "procurement", settings, sink, checkpoints, producer, factory,
        highwater=highwater, clock=clock,
    )  # fmt: skip
