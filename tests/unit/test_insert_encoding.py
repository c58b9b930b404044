"""Rows inserted through the JSON body (schemas/insert_encoding.py) are stored exactly as
clickhouse-connect's own ``client.insert`` stores them, in the real schema's tables.

chdb opens one engine directory per process, and the integration tests hold one for the
whole session, so the engine here runs in a child process: it is handed every case at
once (pickled), writes each case's rows twice, into two copies of the real table (one
through ``Warehouse.insert``, one through ``client.insert``), and returns both tables as
read back. The cases are built here; the comparisons are made here."""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import clickhouse_ddl as ddl
from schemas.clickhouse_ddl import RAW_BYTES_TABLES
from schemas.insert_encoding import json_rows, stored_time

ROOT = Path(__file__).resolve().parents[2]
WIB = ZoneInfo("Asia/Jakarta")
T = datetime(2026, 3, 2, 6, 0, 0, 123456, tzinfo=UTC)
# dead_letters keep 90 days: a row older than that is dropped as it is inserted.
RECENT = datetime.now(UTC).replace(microsecond=654321)
HALF_ULP32 = 1 + 2**-24  # a Float32 tie: a double that lies exactly between two floats


@dataclass
class Case:
    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    ref_rows: list[tuple[Any, ...]] | None = None  # what client.insert gets, if not `rows`
    tz: str = "UTC"  # the child's local time zone while the case is written


def position(i: int, **changes: Any) -> tuple[Any, ...]:
    row = {
        "vehicle_id": f"bus-{i}",
        "ts": T + timedelta(seconds=i, microseconds=777 * i),
        "label": None if i % 3 == 0 else f"Bus {i} ke Simpang Lima",
        "route_id": f"R{i % 4}",
        "corridor": ["K1", "K2", "Koridor Ⅲ", ""][i % 4],
        "trip_id": None if i % 2 else f"trip-{i}",
        "lat": -6.99 + i * 1.2345678901234e-5,
        "lon": 110.42 - i * 9.87654321e-6,
        "bearing": None if i % 5 == 0 else (i * 37.123456789) % 360,
        "reported_speed_kmh": None if i % 2 else i * 1.1,
        "speed_kmh": None if i % 7 == 0 else 0.1 * i + 1e-9,
        "occupancy": "" if i % 2 else "MANY_SEATS_AVAILABLE",
        "source": "brt-simulator",
        "bad_fix": i % 4 == 1,  # a bool into UInt8
        "ingested_at": datetime(2026, 3, 2, 6, 0, 5, 999999) + timedelta(seconds=i),  # naive
        "kecamatan": ["Semarang Tengah", "Gajahmungkur", "", "Tembalang ✓"][i % 4],
    }
    row.update(changes)
    return tuple(row[c] for c in ddl.POSITION_COLUMNS)


def window(i: int, **changes: Any) -> tuple[Any, ...]:
    row = {
        "vehicle_id": f"bus-{i}",
        # DateTime (seconds): aware in another zone, and naive, both with microseconds.
        "window_start": (T + timedelta(minutes=i)).astimezone(WIB)
        if i % 2
        else datetime(2026, 3, 2, 6, i % 60, 59, 999999),
        "corridor": "K1",
        "positions": [0, 1, 12, 4_294_967_295][i % 4],
        "speed_samples": i,
        "mean_speed_kmh": None if i % 3 == 0 else 100 / 3 + i,
        "max_speed_kmh": None if i % 3 == 0 else 123.456789 + i,
        "seconds_over_limit": [0.0, 12.5, 1e-7, 59.99999999][i % 4],
        "limit_kmh": 50 if i % 2 else 60.0,  # an int into Float32 too
        "version": i,
    }
    row.update(changes)
    return tuple(row[c] for c in ddl.VEHICLE_1M_COLUMNS)


def alarm(i: int) -> tuple[Any, ...]:
    cleared = T + timedelta(minutes=5, microseconds=999) if i % 2 else None
    return (
        f"overspeed/bus-{i}", "overspeed", f"bus-{i}", ["warning", "critical"][i % 2],
        ["open", "cleared"][i % 2], T, T + timedelta(seconds=30, microseconds=500500),
        cleared, 87.123456789 + i, 60.0, i + 1,
        '{"corridor": "K1", "kecamatan": "Semarang Tengah", "note": "a \\"quote\\", \\\\, é\\n"}',
        "transit", ["waspada", "siaga", ""][i % 3], "threshold",
        None if i % 3 else "operator ✓", None if i % 3 else T.astimezone(WIB), None,
    )  # fmt: skip


def status(i: int) -> tuple[Any, ...]:
    return (
        f"connector-{i}", f"host:{i}", "running",
        [[], ["transit.vehicle-positions"], ["a", "ü", ""]][i % 3],
        [0, 2**63, 2**64 - 1][i % 3],  # UInt64 up to its top
        None if i % 2 else T, T, datetime(2026, 3, 2, 6, 1, 2, 345678),
    )  # fmt: skip


def checkpoint(i: int) -> tuple[Any, ...]:
    row = {
        "cluster_id": "cluster",
        "group_id": "sitroom",
        "topic": "transit.vehicle-positions",
        "partition": i,
        "entity": f"bus-{i}" if i % 2 else "",
        "offset": [-1, 0, 2**63 - 1][i % 3],
        "state": '{"offset": 5, "vehicles": {"bus-1": []}}' * (1 + i),
        "saved_at": T + timedelta(microseconds=i),  # DateTime64(6): every microsecond kept
    }
    return tuple(row[c] for c in ddl.CHECKPOINT_COLUMNS)


def letter(i: int) -> tuple[Any, ...]:
    """A dead letter whose raw value is bytes (the worker decodes it; bytes must still go)."""
    return (0, i, RECENT, "bad json", "x", "t", None, None, None, "c", "f:1",
            b"\xff\x00raw \xe2\x9c\x93" * (i + 1), 9, "k")  # fmt: skip


CHARS = 'aZ09 "\\/\n\t\r\x00\x01\x1f\x7féü✓😀\u2028\u2029\ufeff{}[],:'


def text(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(CHARS) for _ in range(rnd.randint(0, n)))


def moment(rnd: random.Random, days: int = 134 * 365) -> datetime:
    """Any instant of 1971-2105 (of 2026 for a partition key: a few months per insert),
    aware in some zone or naive, microseconds included."""
    base = datetime(1971 if days > 365 else 2026, 1, 1, tzinfo=UTC)
    at = base + timedelta(microseconds=rnd.randrange(days * 86400 * 10**6))
    zone = rnd.choice([UTC, WIB, timezone(timedelta(hours=-3, minutes=-30)), None])
    return at.replace(tzinfo=None) if zone is None else at.astimezone(zone)


def number(rnd: random.Random) -> float:
    return rnd.choice(
        [rnd.uniform(0, 200), rnd.uniform(-1e6, 1e6), rnd.random() * 10 ** rnd.randint(-30, 30)]
    )


def random_rows(seed: int) -> dict[str, list[tuple[Any, ...]]]:
    rnd = random.Random(seed)
    maybe = lambda v: None if rnd.random() < 0.3 else v  # noqa: E731
    positions = [
        (f"v{i}{text(rnd, 8)}", moment(rnd, 90), maybe(text(rnd, 20)), maybe(text(rnd, 5)),
         text(rnd, 4), maybe(text(rnd, 30)), number(rnd), number(rnd), maybe(rnd.uniform(0, 360)),
         maybe(number(rnd)), maybe(number(rnd)), text(rnd, 3), text(rnd, 3), rnd.random() < 0.5,
         moment(rnd), text(rnd, 10))
        for i in range(300)
    ]  # fmt: skip
    windows = [
        (f"v{i}", moment(rnd, 90), text(rnd, 4), rnd.randrange(2**32), rnd.randrange(2**32),
         maybe(number(rnd)), maybe(number(rnd)), number(rnd), rnd.choice([50, 60.0, number(rnd)]),
         rnd.randrange(2**32))
        for i in range(300)
    ]  # fmt: skip
    alarms = [
        (f"a{i}{text(rnd, 10)}", text(rnd, 6), text(rnd, 12), text(rnd, 3), text(rnd, 3),
         moment(rnd), moment(rnd), maybe(moment(rnd)), number(rnd), number(rnd), rnd.randrange(2**32),
         text(rnd, 60), text(rnd, 3), text(rnd, 3), text(rnd, 3), maybe(text(rnd, 9)),
         maybe(moment(rnd)), maybe(text(rnd, 9)))
        for i in range(300)
    ]  # fmt: skip
    return {"positions": positions, "vehicle_1m": windows, "alarms": alarms}


def cases() -> dict[str, Case]:
    positions = [position(i) for i in range(40)]
    seconds = [position(i, ts=stored_time((T + timedelta(seconds=i * 1.0001)).timestamp()),
                        ingested_at=stored_time(T.timestamp() + i)) for i in range(20)]  # fmt: skip
    as_datetimes = [
        (
            r[0],
            datetime.fromtimestamp(r[1], UTC),
            *r[2:14],
            datetime.fromtimestamp(r[14], UTC),
            *r[15:],
        )
        for r in seconds
    ]
    windows = [window(i) for i in range(24)]
    int_windows = [window(i, window_start=int(T.timestamp()) // 60 * 60 + 60 * i) for i in range(4)]
    rnd = random_rows(20261130)
    return {
        "positions": Case(ddl.POSITIONS, ddl.POSITION_COLUMNS, positions),
        # Seeded random rows: any text, instants of any zone (or none), floats of any size.
        "positions_random": Case(ddl.POSITIONS, ddl.POSITION_COLUMNS, rnd["positions"]),
        "vehicle_1m_random": Case(ddl.VEHICLE_1M, ddl.VEHICLE_1M_COLUMNS, rnd["vehicle_1m"]),
        "alarms_random": Case(ddl.ALARMS, ddl.ALARM_COLUMNS, rnd["alarms"]),
        # What the transit processor writes now: times as seconds (stored_time).
        "positions_seconds": Case(
            ddl.POSITIONS, ddl.POSITION_COLUMNS, seconds, ref_rows=as_datetimes
        ),
        "vehicle_1m": Case(ddl.VEHICLE_1M, ddl.VEHICLE_1M_COLUMNS, windows),
        "vehicle_1m_int_starts": Case(
            ddl.VEHICLE_1M,
            ddl.VEHICLE_1M_COLUMNS,
            int_windows,
            ref_rows=[(r[0], datetime.fromtimestamp(r[1], UTC), *r[2:]) for r in int_windows],
        ),
        "alarms": Case(ddl.ALARMS, ddl.ALARM_COLUMNS, [alarm(i) for i in range(12)]),
        "source_status": Case(
            ddl.SOURCE_STATUS, ddl.SOURCE_STATUS_COLUMNS, [status(i) for i in range(6)]
        ),
        "checkpoints": Case(
            ddl.CHECKPOINTS, ddl.CHECKPOINT_COLUMNS, [checkpoint(i) for i in range(6)]
        ),
        # Float32 columns given a double that lies exactly between two Float32 values.
        "float32_ties": Case(
            ddl.POSITIONS,
            ddl.POSITION_COLUMNS,
            [
                position(i, speed_kmh=HALF_ULP32 * 2**k, bearing=HALF_ULP32 * 2**k)
                for i, k in enumerate(range(0, 8))
            ],
        ),
        # A host on Semarang's time: naive datetimes must not move with the path taken.
        "naive_on_a_wib_host": Case(ddl.POSITIONS, ddl.POSITION_COLUMNS, positions[:8], tz=WIB.key),
        # Fallbacks: clickhouse-connect's own insert for what JSON cannot carry.
        "bytes_fallback": Case(
            ddl.DEAD_LETTERS,
            ddl.DEAD_LETTER_COLUMNS,
            [letter(i) for i in range(3)],
        ),
        "numpy_fallback": Case(
            ddl.VEHICLE_1M,
            ddl.VEHICLE_1M_COLUMNS,
            [window(i, positions=np.uint32(i), mean_speed_kmh=np.float32(40.5)) for i in range(4)],
        ),
        "out_of_range_int": Case(
            ddl.SOURCE_STATUS,
            ddl.SOURCE_STATUS_COLUMNS,
            [(*status(0)[:4], 2**64, *status(0)[5:])],
        ),
        "negative_into_unsigned": Case(
            ddl.VEHICLE_1M, ddl.VEHICLE_1M_COLUMNS, [window(1, positions=-1)]
        ),
        "over_uint32": Case(ddl.VEHICLE_1M, ddl.VEHICLE_1M_COLUMNS, [window(1, version=2**32)]),
        # Not finite: msgspec writes null; stored as NULL, or the default where not Nullable.
        "non_finite": Case(
            ddl.VEHICLE_1M,
            ddl.VEHICLE_1M_COLUMNS,
            [
                window(1, mean_speed_kmh=math.nan, seconds_over_limit=math.inf),
                window(3, max_speed_kmh=-math.inf),
            ],
        ),
    }


# --- the child: one chdb engine, every case -------------------------------------------


def child() -> None:
    """Run in a fresh interpreter: store each case both ways and send back what is stored."""
    from schemas.warehouse import Warehouse

    todo: dict[str, Case] = pickle.loads(sys.stdin.buffer.read())
    out: dict[str, dict[str, Any]] = {}

    async def main() -> None:
        wh = Warehouse("chdb://" + tempfile.mkdtemp(prefix="insert-encoding-"))
        await wh.ensure_schema()
        client = wh._connect()
        used: list[str] = []
        for method in ("insert", "raw_insert"):
            real = getattr(client, method)

            def spy(*a: Any, _real: Any = real, _name: str = method, **k: Any) -> Any:
                used.append(_name)
                return _real(*a, **k)

            setattr(client, method, spy)
        for name, case in todo.items():
            os.environ["TZ"] = case.tz
            time.tzset()
            new, ref = f"t_{name}_new", f"t_{name}_ref"
            for t in (new, ref):
                await wh._run("command", f"CREATE TABLE {t} AS {case.table}")
            result: dict[str, Any] = {"error_new": None, "error_ref": None}
            used.clear()
            try:
                await wh.insert(new, case.rows, case.columns)
            except Exception as exc:
                result["error_new"] = repr(exc)
            result["paths"] = list(used)
            try:
                await wh._run("insert", ref, case.ref_rows or case.rows, column_names=case.columns)
            except Exception as exc:
                result["error_ref"] = repr(exc)
            for key, t in (("new", new), ("ref", ref)):
                got = await wh._run("query", f"SELECT * FROM {t} ORDER BY ALL")
                result[key] = [tuple(r) for r in got.result_rows]
            for key, a, b in (("new_only", new, ref), ("ref_only", ref, new)):
                result[key] = await wh.scalar(
                    f"SELECT count() FROM (SELECT * FROM {a} EXCEPT SELECT * FROM {b})"
                )
            out[name] = result
        os.environ["TZ"] = "UTC"
        time.tzset()
        wh.close()

    asyncio.run(main())
    sys.stdout.buffer.write(pickle.dumps(out))


@pytest.fixture(scope="module")
def stored() -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-c", "from tests.unit.test_insert_encoding import child; child()"],
        input=pickle.dumps(cases()),
        capture_output=True,
        timeout=240,
        cwd=ROOT,
        env={**os.environ, "TZ": "UTC"},
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    result: dict[str, dict[str, Any]] = pickle.loads(done.stdout)
    return result


def same(value: Any) -> Any:
    """Comparable: NaN equal to NaN."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, tuple | list):
        return type(value)(same(v) for v in value)
    return value


def assert_stored_alike(r: dict[str, Any], rows: int) -> None:
    assert r["error_new"] is None and r["error_ref"] is None, r
    assert len(r["new"]) == rows
    diff = [(a, b) for a, b in zip(r["new"], r["ref"], strict=True) if same(a) != same(b)]
    assert not diff, f"{len(diff)} rows differ (new path, client.insert): {diff[:3]}"
    assert (r["new_only"], r["ref_only"]) == (0, 0)


MAIN = ["positions", "positions_seconds", "vehicle_1m", "vehicle_1m_int_starts", "alarms",
        "source_status", "checkpoints", "positions_random", "vehicle_1m_random",
        "alarms_random"]  # fmt: skip


@pytest.mark.parametrize("name", MAIN)
def test_the_json_path_stores_what_client_insert_stores(
    stored: dict[str, dict[str, Any]], name: str
) -> None:
    case = cases()[name]
    assert json_rows(case.rows) is not None
    r = stored[name]
    assert r["paths"] == ["raw_insert"]
    assert_stored_alike(r, len(case.rows))


def test_values_that_must_be_cut_or_kept(stored: dict[str, dict[str, Any]]) -> None:
    """Not only alike: what DateTime64(3), DateTime, UInt8, Nullable and UInt64 must hold."""
    rows = {r[0]: r for r in stored["positions"]["new"]}
    r1 = rows["bus-1"]
    ts = T + timedelta(seconds=1, microseconds=777)
    assert r1[1].replace(tzinfo=UTC) == ts.replace(microsecond=ts.microsecond // 1000 * 1000)
    assert r1[13] == 1 and rows["bus-2"][13] == 0  # bool into UInt8
    assert r1[14].replace(tzinfo=UTC) == datetime(2026, 3, 2, 6, 0, 6, 999000, tzinfo=UTC)
    assert rows["bus-3"][2] is None and rows["bus-3"][3] == "R3"
    assert rows["bus-3"][15] == "Tembalang ✓" and rows["bus-2"][4] == "Koridor Ⅲ"
    windows = {r[0]: r for r in stored["vehicle_1m"]["new"]}
    w1 = windows["bus-1"][1].astimezone(UTC)
    assert w1 == (T + timedelta(minutes=1)).replace(microsecond=0)  # DateTime: seconds
    assert windows["bus-3"][3] == 4_294_967_295 and windows["bus-3"][5] is None
    assert windows["bus-2"][5] == pytest.approx(100 / 3 + 2, rel=1e-7)
    assert windows["bus-2"][5] != 100 / 3 + 2  # Float32, not the double
    top = [r for r in stored["source_status"]["new"] if r[0] == "connector-2"]
    assert top[0][4] == 2**64 - 1 and top[0][3] == ["a", "ü", ""]
    seconds = {r[0]: r for r in stored["positions_seconds"]["new"]}
    want = (T + timedelta(seconds=7 * 1.0001)).timestamp()
    assert seconds["bus-7"][1].replace(tzinfo=UTC).timestamp() == pytest.approx(want, abs=1e-3)
    checkpoints = {r[3]: r for r in stored["checkpoints"]["new"]}
    # Read back in the table's column order: ..., offset, state, saved_at, entity.
    assert checkpoints[5][6].replace(tzinfo=UTC) == T + timedelta(microseconds=5)  # (6): kept
    assert checkpoints[2][4] == 2**63 - 1 and checkpoints[3][4] == -1


def test_float32_ties_land_within_one_step_of_client_insert(
    stored: dict[str, dict[str, Any]],
) -> None:
    """A double exactly between two Float32 values: clickhouse-connect casts the double
    (ties to even); ClickHouse rounds msgspec's shortest decimal text, which lies just
    above the tie, so it may keep the upper neighbour. One Float32 step, in exact ties
    only; the same value on every write, so a replay changes nothing."""
    r = stored["float32_ties"]
    assert r["paths"] == ["raw_insert"]
    assert r["error_new"] is None and r["error_ref"] is None, r
    assert len(r["new"]) == len(r["ref"]) == 8
    floats32 = (8, 10)  # bearing, speed_kmh
    for new, ref in zip(r["new"], r["ref"], strict=True):
        for i in floats32:
            assert abs(new[i] - ref[i]) <= float(np.spacing(np.float32(ref[i])))
        rest = [j for j in range(len(ref)) if j not in floats32]
        assert same([new[j] for j in rest]) == same([ref[j] for j in rest])


def test_naive_datetimes_do_not_depend_on_the_path_on_a_wib_host(
    stored: dict[str, dict[str, Any]],
) -> None:
    """clickhouse-connect reads a naive datetime as the host's local time
    (naive_datetime_insert="local"); the JSON text carries no offset, so ClickHouse reads
    it in the column's zone (UTC). On a host whose TZ is Asia/Jakarta the same row lands
    seven hours apart depending on which path its batch took."""
    r = stored["naive_on_a_wib_host"]
    assert r["paths"] == ["raw_insert"]
    assert_stored_alike(r, 8)


@pytest.mark.parametrize("name", ["bytes_fallback", "numpy_fallback"])
def test_what_json_cannot_carry_goes_through_client_insert(
    stored: dict[str, dict[str, Any]], name: str
) -> None:
    case = cases()[name]
    assert json_rows(case.rows) is None
    r = stored[name]
    assert r["paths"] == ["insert"]
    assert_stored_alike(r, len(case.rows))


@pytest.mark.parametrize("name", ["out_of_range_int", "negative_into_unsigned", "over_uint32"])
def test_an_int_out_of_range_is_refused_not_wrapped(
    stored: dict[str, dict[str, Any]], name: str
) -> None:
    """clickhouse-connect refuses an int its column cannot hold; the JSON path must not
    store another number (ClickHouse's text parser wraps it) in its place."""
    r = stored[name]
    assert r["error_ref"] is not None  # clickhouse-connect refuses it
    assert r["error_new"] is not None and r["new"] == [], r


def test_non_finite_floats_are_stored_as_null_or_the_default(
    stored: dict[str, dict[str, Any]],
) -> None:
    r = stored["non_finite"]
    assert r["error_new"] is None
    rows = {row[0]: row for row in r["new"]}
    assert rows["bus-1"][5] is None  # NaN into Nullable(Float32)
    assert rows["bus-1"][7] == 0.0  # inf into Float32: its default
    assert rows["bus-3"][6] is None  # -inf into Nullable(Float32)
    assert rows["bus-1"][3] == 1 and rows["bus-3"][9] == 3  # the rest of the row as given


# --- the encoder alone ----------------------------------------------------------------


def test_json_rows_is_the_rows_as_json_arrays() -> None:
    rows = [("a", 1, None, True, 1.5, ["x"]), ("b", 2, 2.5, False, 0.1, [])]
    body = json_rows(rows)
    assert body is not None
    assert msgspec.json.decode(b"[" + body + b"]") == [list(r) for r in rows]
    assert json_rows([]) == b""


@pytest.mark.parametrize(
    "rows",
    [
        [(1, b"raw")],
        [(1, None), (2, bytearray(b"raw"))],
        [(1, memoryview(b"raw"))],
    ],
    ids=["bytes", "bytearray-after-null", "memoryview"],
)
def test_json_rows_refuses_bytes(rows: list[tuple[Any, ...]]) -> None:
    """JSON would carry bytes as base64 text, stored as that text. A column is judged by
    its first value; the table whose column mixes text and bytes is declared instead."""
    assert json_rows(rows) is None
    assert ddl.DEAD_LETTERS in RAW_BYTES_TABLES


class Opaque:
    pass


@pytest.mark.parametrize(
    "value",
    [Opaque(), np.float32(1.5), np.int64(3), complex(1, 2)],
    ids=["object", "np.float32", "np.int64", "complex"],
)
def test_json_rows_refuses_types_msgspec_does_not_know(value: Any) -> None:
    assert json_rows([(1, "a"), (2, value)]) is None
    assert json_rows([(value, "a")]) is None


def test_json_rows_writes_times_with_their_offset_and_naive_ones_without() -> None:
    body = json_rows(
        [(T, datetime(2026, 1, 1, 0, 0, 0, 5), T.astimezone(timezone(timedelta(hours=7))))]
    )
    assert body == (
        b'["2026-03-02T06:00:00.123456Z","2026-01-01T00:00:00.000005",'
        b'"2026-03-02T13:00:00.123456+07:00"]'
    )
    assert json_rows([(date(2026, 3, 2),)]) == b'["2026-03-02"]'


@pytest.mark.parametrize(
    "ts",
    [0.0, 1.0005, 1772431200.123456, 1772431200.9999996, 1772431200.0004999, 1.9995, -0.5],
)
def test_stored_time_is_what_a_datetime_becomes_in_datetime64_3(ts: float) -> None:
    """The same instant as clickhouse-connect stores a datetime made from ``ts``: the
    datetime's microseconds (rounded half to even), cut to the millisecond."""
    dt = datetime.fromtimestamp(ts, UTC)
    us = (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    want_ms = us // 1000
    got = stored_time(ts)
    assert round(got * 1000) == want_ms
    assert f"{got!r}" == f"{want_ms / 1000!r}"  # JSON carries exactly that decimal


@settings(max_examples=2000, deadline=None)
@given(
    st.floats(-1e9, 4.1e9, allow_nan=False)
    | st.integers(0, 4_100_000_000_000).map(lambda n: n / 1000 + 0.0005)
)
def test_stored_time_agrees_with_datetime_everywhere(ts: float) -> None:
    dt = datetime.fromtimestamp(ts, UTC)
    us = (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert round(stored_time(ts) * 1000) == us // 1000


@pytest.mark.parametrize(
    ("rows", "encoded"),
    [
        ([(None,)], True),  # one NULL: min() of one value compares nothing
        ([(None,), (None,)], True),
        ([(None,), (3,)], True),
        ([(3,), (None,), (300,)], False),
        ([("3",)], False),  # not a number: left to clickhouse-connect's path
    ],
)
def test_integer_ranges_are_checked_around_nulls(
    rows: list[tuple[Any, ...]], encoded: bool
) -> None:
    assert (json_rows(rows, [(0, 0, 255)]) is not None) is encoded
