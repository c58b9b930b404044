"""One-event-per-message runs decoded in one call must judge every message as the
per-message path does, whatever the messages hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.validation import decode_positions, decode_single_positions

GOOD = b'{"vehicle_id":"b%d","lat":-6.99,"lon":110.42,"timestamp":"2026-03-02T08:00:%02dZ"}'
SHAPES = {
    "good": lambda i: GOOD % (i, i % 60),
    "pretty": lambda i: (GOOD % (i, i % 60)).replace(b",", b",\n"),
    "empty": lambda i: b"",
    "blank": lambda i: b"   ",
    "array": lambda i: b"[" + GOOD % (i, i % 60) + b"]",
    "two objects on two lines": lambda i: GOOD % (i, 1) + b"\n" + GOOD % (i, 2),
    "two objects on one line": lambda i: GOOD % (i, 1) + b"," + GOOD % (i, 2),
    "open string": lambda i: b'{"vehicle_id":"',
    "closing half": lambda i: b'{"},"lat":1,"lon":2,"timestamp":"2026-03-02T08:00:00Z"}',
    "naive time": lambda i: GOOD.replace(b"Z", b"") % (i, i % 60),
    "offset time": lambda i: GOOD.replace(b"Z", b"+07:00") % (i, i % 60),
    "schema": lambda i: b'{"vehicle_id":"b","lat":95,"lon":1,"timestamp":"2026-03-02T08:00:00Z"}',
}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(SHAPES)), min_size=1, max_size=8))
def test_a_run_decoded_at_once_is_judged_as_message_by_message(shapes: list[str]) -> None:
    values = [SHAPES[name](i) for i, name in enumerate(shapes)]
    one_by_one = [decode_positions(v) for v in values]
    at_once = decode_single_positions(list(values))
    if at_once is None:
        return  # the caller then goes message by message
    assert all(good == [p] and bad == [] for (good, bad), p in zip(one_by_one, at_once,
                                                                   strict=True))  # fmt: skip


def test_plain_one_event_messages_take_the_fast_path() -> None:
    values = [SHAPES["good"](i) for i in range(5)]
    decoded = decode_single_positions(list(values))
    assert decoded is not None and [p.vehicle_id for p in decoded] == [f"b{i}" for i in range(5)]


def test_messages_that_could_combine_never_take_it() -> None:
    assert decode_single_positions([SHAPES["open string"](0), SHAPES["closing half"](1)]) is None
    assert decode_single_positions([SHAPES["two objects on two lines"](0), b""]) is None
