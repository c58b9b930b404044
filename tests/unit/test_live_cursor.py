"""Resumable live ids: a client cut off after any event and resumed from its id sees every
item once, whatever the interleaving of partitions and batches."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from api.live_cursor import (
    TP,
    EventId,
    Positions,
    UnreadableEventId,
    format_event_id,
    parse_event_id,
    plan_resume,
)

A0, A1, B0 = ("sitroom.alarms", 0), ("sitroom.alarms", 1), ("transit.vehicle-positions", 0)


def deliver(records: dict[TP, list[int]], start: dict[TP, int], rng: random.Random,
            after: tuple[TP, int, int] | None = None) -> list[tuple[str, tuple[TP, int, int]]]:  # fmt: skip
    """What the live endpoint sends: records of each partition in order from ``start``, the
    partitions interleaved at random, one event per item (``records[tp][offset]`` items);
    returns (id, (partition, offset, item)) per event."""
    positions = Positions(start)
    cursor = dict(start)
    out = []
    while any(cursor[tp] < len(records[tp]) for tp in records):
        tp = rng.choice([tp for tp in records if cursor[tp] < len(records[tp])])
        offset = cursor[tp]
        for item in range(records[tp][offset]):
            if after and (tp, offset) == after[:2] and item <= after[2]:
                continue
            out.append((positions.event_id(tp, offset, item), (tp, offset, item)))
        positions.done(tp, offset)
        cursor[tp] += 1
    return out


@pytest.mark.parametrize("seed", range(5))
def test_a_client_cut_off_after_any_event_resumes_with_every_item_exactly_once(seed: int) -> None:
    rng = random.Random(seed)
    # Items per record: a batch record holds several, a record of another domain none.
    records = {tp: [rng.choice([0, 1, 1, 3]) for _ in range(12)] for tp in (A0, A1, B0)}
    everything = Counter(
        (tp, offset, item) for tp, rs in records.items() for offset, n in enumerate(rs) for item in range(n)
    )  # fmt: skip
    sent = deliver(records, dict.fromkeys(records, 0), rng)
    assert Counter(where for _, where in sent) == everything
    latest = {tp: len(rs) for tp, rs in records.items()}
    for cut in range(len(sent)):
        seen = [where for _, where in sent[: cut + 1]]
        plan = plan_resume(list(records), parse_event_id(sent[cut][0]), {}, latest, 1000)
        assert plan.gaps == []
        replay = deliver(records, plan.seek, rng, plan.delivered)
        assert Counter(seen + [where for _, where in replay]) == everything, f"cut after {cut}"


def test_the_opening_id_resumes_from_where_the_stream_began() -> None:
    start = {A0: 4, A1: 0, B0: 9}
    opening = Positions(start).opening_id()
    assert opening == "~4.0.9"
    plan = plan_resume(list(start), parse_event_id(opening), {}, {A0: 6, A1: 1, B0: 9}, 100)
    assert plan.seek == start and plan.delivered is None and plan.gaps == []


def test_replay_is_bounded_and_says_what_it_left_out() -> None:
    last = EventId(positions=(10, 0, 5))
    plan = plan_resume([A0, A1, B0], last, {}, {A0: 50, A1: 3, B0: 5}, max_records=20)
    assert plan.seek == {A0: 30, A1: 0, B0: 5}
    assert plan.gaps == ["20 record(s) of sitroom.alarms/0 not replayed"]


def test_expired_records_start_at_the_earliest_and_are_reported() -> None:
    last = EventId(positions=(2, 0, 0), record=(A0, 2, 1))
    plan = plan_resume([A0, A1, B0], last, {A0: 7}, {A0: 9, A1: 0, B0: 0}, 100)
    assert plan.seek[A0] == 7
    assert plan.delivered is None  # the record it stopped in is gone: nothing to skip
    assert plan.gaps == ["5 record(s) of sitroom.alarms/0 not replayed"]


def test_an_id_of_a_stream_with_other_partitions_starts_from_now() -> None:
    last = parse_event_id(format_event_id((A0, 1, 0), [1, 0]))  # two partitions, not three
    plan = plan_resume([A0, A1, B0], last, {}, {A0: 4, A1: 2, B0: 8}, 100)
    assert plan.seek == {A0: 4, A1: 2, B0: 8} and plan.gaps


@pytest.mark.parametrize(
    "text",
    [
        "sitroom.alarms:0:12:0",  # an id of the API before resumable ids
        "garbage",
        "~1.x.3",
        "sitroom.alarms:0:-1:0~0",
        "sitroom.alarms:zero:1:0~0",
    ],
)
def test_ids_this_api_did_not_write_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(UnreadableEventId, match=r"event id|negative"):
        parse_event_id(text)


def test_ids_round_trip_with_topic_names_holding_dots_and_dashes() -> None:
    text = format_event_id((B0, 17, 2), [3, 4, 17])
    assert text == "transit.vehicle-positions:0:17:2~3.4.17"
    assert parse_event_id(text) == EventId(positions=(3, 4, 17), record=(B0, 17, 2))
