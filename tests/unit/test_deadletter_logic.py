from datetime import UTC, datetime

from schemas import clickhouse_ddl as ddl
from schemas.alarm_rules import load_rules
from streams.deadletter_logic import DeadLetterProcessor, letter_row
from streams.pipeline import Emitted, Message

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def row(value: bytes, **headers: str) -> dict[str, object]:
    msg = Message("sitroom.deadletter", 0, 41, None, value,
                  tuple((k.replace("_", "."), v.encode()) for k, v in headers.items()))  # fmt: skip
    return dict(zip(ddl.DEAD_LETTER_COLUMNS, letter_row(msg, NOW), strict=True))


def test_a_worker_rejection_keeps_its_reason_place_and_bytes() -> None:
    r = row(b'{"vehicle_id": 1}', reason="schema_violation", detail="lat: missing",
            source_topic="transit.vehicle-positions", source_partition="3",
            source_offset="120", item_index="7")  # fmt: skip
    assert (r["reason"], r["source_topic"], r["source_partition"], r["source_offset"]) == (
        "schema_violation", "transit.vehicle-positions", 3, 120)  # fmt: skip
    assert r["item_index"] == 7 and r["connector"] == "" and r["raw"] == '{"vehicle_id": 1}'
    assert (r["partition"], r["offset"], r["received_at"], r["raw_bytes"]) == (0, 41, NOW, 17)


def test_a_connector_rejection_says_file_and_line_and_personal_data_is_withheld() -> None:
    r = row(b"2025-09-13,27,Beras,,x", reason="invalid_row", detail="bad price",
            source_connector="price-replay", source_location="prices.csv:12")  # fmt: skip
    assert (r["connector"], r["location"], r["source_topic"]) == (
        "price-replay",
        "prices.csv:12",
        "",
    )
    assert r["source_partition"] is None
    secret = row(b'{"phone": "0812"}', reason="schema_violation", source_topic="reports.contacts")
    assert secret["raw"] == "<withheld: personal data>" and secret["raw_bytes"] == 17


def test_broken_headers_and_bytes_still_make_a_row() -> None:
    r = row(b"\xff\xfe", source_offset="not a number")
    assert r["reason"] == "unknown" and r["source_offset"] is None and r["raw"] == "\ufffd\ufffd"


def test_the_processor_records_its_offset_and_never_rejects() -> None:
    proc = DeadLetterProcessor(load_rules())
    out = Emitted()
    seen, rejected = proc.handle(Message("sitroom.deadletter", 0, 5, None, None), NOW, out)
    assert (seen, rejected, proc.offset("sitroom.deadletter")) == (1, [], 5)
    assert len(out.tables[ddl.DEAD_LETTERS][1]) == 1
    restored = DeadLetterProcessor(load_rules(), proc.dumps())
    assert restored.offset("sitroom.deadletter") == 5


def test_letters_carry_the_cluster_id_so_a_new_broker_does_not_overwrite_them() -> None:
    msg = Message("sitroom.deadletter", 0, 0, None, b"x", (("reason", b"schema_violation"),))
    first = DeadLetterProcessor(load_rules(), cluster_id="cluster-a")
    second = DeadLetterProcessor(load_rules(), cluster_id="cluster-b")  # offsets from 0 again
    rows = []
    for proc in (first, second):
        out = Emitted()
        proc.handle(msg, NOW, out)
        columns, (r,) = out.tables[ddl.DEAD_LETTERS]
        rows.append(dict(zip(columns, r, strict=True)))
    # The table's key (ORDER BY) tells the two letters apart only through cluster_id.
    key = ("partition", "offset", "cluster_id")
    assert "ORDER BY (partition, offset, cluster_id)" in next(
        s for s in ddl.DDL if f"EXISTS {ddl.DEAD_LETTERS} " in s
    )
    assert [tuple(r[k] for k in key) for r in rows] == [(0, 0, "cluster-a"), (0, 0, "cluster-b")]
