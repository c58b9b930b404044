"""E-procurement gives the same rows however its feed arrives (issue 8): (a) in order;
(b) shuffled within the lateness, tenders interleaved; (c) in random batches with the
state saved and restored between some; (d) with redeliveries; (e) interleaved with a
replay of other agencies' tenders hours older, which must give each source the rows it
gives alone. Rows are compared as ``ReplacingMergeTree ... FINAL`` shows them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import load_rules
from schemas.procurement import TenderEvent
from schemas.settings import Settings
from streams.pipeline import Emitted, Message, alarm_row
from streams.procurement_logic import ProcurementPartition
from tests.unit import stream_orders as orders

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
BOOK = load_rules()
LATENESS_S = SETTINGS.window_allowed_lateness_s
T0 = 1_780_000_000.0
DAY = 86400.0
OLDER_S = 7 * 3600.0
WINNERS = ("cv-a", "cv-b")
# Gaps between one tender's steps: some within the lateness (a shuffle reorders them),
# some of a listing's steps at the same moment (an OCDS release), some days apart.
GAPS = (0.0, 2.0, 7.0, 600.0, 3 * DAY)
TENDER_VERSION = ddl.TENDER_COLUMNS.index("version")

Timed = orders.Timed[TenderEvent]


def _event(agency: str, tender: str, n: int, kind: str, ts: float, **kw: Any) -> Timed:
    ev = TenderEvent.model_validate({
        "event_id": f"{tender}/{n}", "source": "spse", "tender_id": tender, "kind": kind,
        "ts": datetime.fromtimestamp(ts, UTC), "agency_id": agency, **kw})  # fmt: skip
    return f"spse:{tender}", ts, ev


@st.composite
def tender(draw: st.DrawFn, agency: str, tender_id: str, start: float) -> list[Timed]:
    """One tender's life in event-time order: an announcement (sometimes amended), bids, an
    award and sometimes a contract, with listing statuses that change as it goes.

    An addendum may amend the period, within the lateness or long after; findings are
    judged once their evidence has settled, on the terms then in force."""
    ts = start
    method = draw(st.sampled_from(["Tender", "Pengadaan Langsung", "Tender Cepat"]))
    estimate = float(draw(st.sampled_from([100, 1000])))
    period = draw(st.sampled_from([1.0, 5.0, 10.0]))
    n, out = 0, []

    def add(kind: str, **kw: Any) -> None:
        nonlocal n, ts
        out.append(_event(agency, tender_id, n, kind, ts, agency_name=f"Dinas {agency}", **kw))
        n += 1
        ts += draw(st.sampled_from(GAPS))

    announce = {"method": method, "title": f"Paket {tender_id}", "estimate_amount": estimate,
                "estimate_currency": "IDR", "status": "Pengumuman",
                "tender_start": datetime.fromtimestamp(start, UTC),
                "tender_end": datetime.fromtimestamp(start + period * DAY, UTC)}  # fmt: skip
    add("announced", **announce)
    if draw(st.booleans()):  # an addendum: a new title and status, maybe a new period
        amended = draw(st.sampled_from([period, 1.0, 10.0]))
        add("announced", title=f"Paket {tender_id} (addendum)", status="Addendum",
            tender_start=datetime.fromtimestamp(start, UTC),
            tender_end=datetime.fromtimestamp(start + amended * DAY, UTC))  # fmt: skip
    bidders = draw(st.lists(st.sampled_from(["b1", "b2", "b3"]), min_size=0, max_size=3))
    for b in bidders:
        add("bid", bidder_id=b, amount=estimate * 0.9, currency="IDR", status="Evaluasi")
    if draw(st.integers(0, 3)) == 0:
        return out
    winner = draw(st.sampled_from(WINNERS))
    ratio = draw(st.sampled_from([0.8, 0.995]))
    add("awarded", winner_id=winner, winner_name=winner.upper(), amount=estimate * ratio,
        currency="IDR", status="Pemenang", bidders=len(set(bidders)) or None)  # fmt: skip
    if draw(st.booleans()):
        # Signed seconds or days after the award: within the lateness it may arrive first
        # and name the winner before the award does.
        ts += draw(st.sampled_from([0.0, 3 * DAY]))
        add("contract", winner_id=winner, amount=estimate * ratio, currency="IDR",
            status="Kontrak")  # fmt: skip
    return out


@st.composite
def feed(draw: st.DrawFn, agencies: Sequence[str], start: float) -> list[Timed]:
    events: list[Timed] = []
    for a in agencies:
        for i in range(draw(st.integers(1, 5))):
            first = start + draw(st.integers(0, 20)) * DAY + draw(st.integers(0, 30))
            events += draw(tender(a, f"{a}-{i}", first))
    return sorted(events, key=lambda e: e[1])


Rows = dict[str, dict[Hashable, tuple[Any, ...]]]
KEYS: dict[str, tuple[Callable[[Sequence[Any]], Hashable], Callable[[Sequence[Any]], Any] | None]] = {
    # Newest write wins: the version is when it was written (see _strip).
    ddl.PROCUREMENT_TENDERS: (lambda r: r[0], lambda r: r[TENDER_VERSION]),
    ddl.PROCUREMENT_EVENTS: (lambda r: (r[1], r[0]), None),
    ddl.PROCUREMENT_FLAGS: (lambda r: (r[0], r[2]), None),
    "alarms": (lambda r: r[0], lambda r: r[10]),
}  # fmt: skip


def _strip(rows: Rows) -> Rows:
    """Tender versions are the wall-clock time of the write (newest write wins, as it must
    on a replay), so they depend on arrival; every other column must not."""
    tenders = rows[ddl.PROCUREMENT_TENDERS]
    cut = {k: r[:TENDER_VERSION] + r[TENDER_VERSION + 1 :] for k, r in tenders.items()}
    return {**rows, ddl.PROCUREMENT_TENDERS: cut}


class Run:
    def __init__(self, wall: float) -> None:
        self.now = datetime.fromtimestamp(wall, UTC)
        self.part = ProcurementPartition(SETTINGS, BOOK)
        self.inserted: dict[str, list[Sequence[Any]]] = {t: [] for t in KEYS}
        self.rejected: list[str] = []

    def keep(self, out: Emitted) -> None:
        for table, (_, rows) in out.tables.items():
            self.inserted[table].extend(rows)
        # The context (index 11) is a snapshot of the tender when the finding was made, for
        # the notification; what the room reads of an alarm (its id, state, level, times,
        # value) must not depend on arrival, and the flag row shows the tender as it is.
        self.inserted["alarms"].extend(alarm_row(a)[:11] + alarm_row(a)[12:] for a in out.alarms)

    def batch(self, events: Sequence[Timed]) -> None:
        """One message, then the tick the pipeline runs after every batch."""
        out = Emitted()
        body = b"[" + b",".join(e.model_dump_json().encode() for _, _, e in events) + b"]"
        msg = Message("procurement.tender-events", 0, self.part.offset("p") + 1, None, body)
        self.rejected += [r.reason.value for r in self.part.handle(msg, self.now, out)[1]]
        self.part.tick(self.now, out)
        self.keep(out)

    def restore(self) -> None:
        self.part = ProcurementPartition(SETTINGS, BOOK, self.part.dumps())

    def rows(self, agencies: set[str]) -> Rows:
        out = Emitted()
        self.part.tick(datetime.fromtimestamp(self.now.timestamp() + DAY, UTC), out)
        self.keep(out)
        assert self.rejected == []

        def mine(table: str, r: Sequence[Any]) -> bool:
            if table == "alarms":
                return str(r[2]).split("/")[0].rsplit("-", 1)[0].removeprefix("spse:") in agencies
            agency = r[3] if table != ddl.PROCUREMENT_EVENTS else r[5]
            return agency in agencies

        return _strip({
            t: orders.last_versions([r for r in rows if mine(t, r)], *KEYS[t])
            for t, rows in self.inserted.items()
        })  # fmt: skip


def one_by_one(events: Sequence[Timed], wall: float, agencies: set[str]) -> Rows:
    run = Run(wall)
    for e in events:
        run.batch([e])
    return run.rows(agencies)


FIRST, SECOND = ("dpu", "dinkes"), ("bpbd",)


def same(got: Rows, expected: Rows) -> None:
    """Equal rows, or the first differing ones by table and key (readable when it fails)."""
    for table in expected:
        for key in set(got[table]) | set(expected[table]):
            assert got[table].get(key) == expected[table].get(key), (table, key)


@settings(max_examples=50, deadline=None)
@given(first=feed(FIRST, T0), second=feed(SECOND, T0 - OLDER_S), seed=st.integers(0, 2**32 - 1))
def test_rows_do_not_depend_on_arrival(first: list[Timed], second: list[Timed], seed: int) -> None:
    rng = random.Random(seed)
    wall = max(e[1] for e in first + second) + 60
    mine, theirs = set(FIRST), set(SECOND)
    expected = one_by_one(first, wall, mine)  # (a)
    assert expected[ddl.PROCUREMENT_TENDERS]

    b = orders.shuffled_within_lateness(rng, first, LATENESS_S)  # (b)
    same(one_by_one(b, wall, mine), expected)

    run = Run(wall)  # (c)
    for batch in orders.batches(rng, first):
        run.batch(batch)
        if rng.random() < 0.5:
            run.restore()
    same(run.rows(mine), expected)

    d = orders.with_duplicates(rng, orders.shuffled_within_lateness(rng, first, LATENESS_S))
    same(one_by_one(d, wall, mine), expected)  # (d)

    mixed = orders.interleaved(rng, first, second)  # (e)
    same(one_by_one(mixed, wall, mine), expected)
    same(one_by_one(mixed, wall, theirs), one_by_one(second, wall, theirs))


def test_a_period_amended_within_the_lateness_is_judged_as_amended() -> None:
    """A 5-day period amended to 10 days a second later was never in force: no finding,
    whichever arrives first. Amended an hour later, the short period was in force: flagged,
    dated by its announcement, in either order."""
    start = datetime.fromtimestamp(T0, UTC)
    terms = {"method": "Tender", "tender_start": start, "estimate_amount": 100.0,
             "estimate_currency": "IDR"}  # fmt: skip

    def amended(after_s: float) -> list[Timed]:
        return [
            _event("dpu", "t", 0, "announced", T0, **terms,
                   tender_end=datetime.fromtimestamp(T0 + 5 * DAY, UTC)),
            _event("dpu", "t", 1, "announced", T0 + after_s, **terms,
                   tender_end=datetime.fromtimestamp(T0 + 10 * DAY, UTC)),
        ]  # fmt: skip

    soon = amended(1.0)
    assert not one_by_one(soon, T0 + 60, {"dpu"})[ddl.PROCUREMENT_FLAGS]
    assert not one_by_one(soon[::-1], T0 + 60, {"dpu"})[ddl.PROCUREMENT_FLAGS]
    later = amended(3600.0)
    flags = one_by_one(later, T0 + 3660, {"dpu"})[ddl.PROCUREMENT_FLAGS]
    assert [(k[0], r[8].timestamp()) for k, r in flags.items()] == [("tender_period_short", T0)]
    same(one_by_one(later[::-1], T0 + 3660, {"dpu"}), one_by_one(later, T0 + 3660, {"dpu"}))


def test_wins_settled_together_raise_at_the_win_that_makes_the_count() -> None:
    """Four wins of one supplier at one agency, all settled by the same tick. The tender of
    the latest win arrived first; counted in that order, its sample (newest) reached the
    alarm engine first and the engine then refused the older one that made the count, so
    the alarm was dated by the fourth win, and only when it happened to be judged first."""
    awards = [("dinkes-2", 2 * DAY), ("dinkes-1", 3 * DAY), ("dinkes-4", 3 * DAY + 600),
              ("dinkes-3", 9 * DAY)]  # fmt: skip
    events = []
    for tender_id, at in awards:
        events += [
            _event("dinkes", tender_id, 0, "announced", T0 + at - 60, method="Tender"),
            _event(
                "dinkes",
                tender_id,
                1,
                "awarded",
                T0 + at,
                winner_id="cv-b",
                amount=90.0,
                currency="IDR",
            ),
        ]
    latest_first = sorted(events, key=lambda e: (e[0] != "spse:dinkes-3", e[1]))
    wall = T0 + 9 * DAY + 60
    for order in (sorted(events, key=lambda e: e[1]), latest_first):
        run = Run(wall)
        for e in order:
            run.batch([e])
        alarms = run.rows({"dinkes"})["alarms"]
        third = f"repeated_winner/dinkes/cv-b/{int((T0 + 3 * DAY + 600) * 1000)}"
        assert [k for k in alarms if str(k).startswith("repeated_winner")] == [third]
