"""Logs that log shippers read right (issue 10)."""

import json
import logging

import pytest

from sitroom.logs import WarningSummary, configure_logging


@pytest.fixture
def restore_logging():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_context_field_never_takes_the_place_of_a_line_field(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("streams.pipeline").info(
        "alarm raised", extra={"level": "siaga", "time": "later", "logger": "x", "kind": "flood"}
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["level"] == "INFO" and line["logger"] == "streams.pipeline"
    assert line["message"] == "alarm raised" and line["time"] != "later"
    assert (line["context_level"], line["context_time"], line["context_logger"]) == (
        "siaga", "later", "x")  # fmt: skip
    assert line["kind"] == "flood"


def test_the_text_format_keeps_the_context(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "text")
    logging.getLogger("connectors.publisher").warning(
        "source record dead-lettered", extra={"reason": "schema_violation", "count": 3}
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "WARNING connectors.publisher: source record dead-lettered" in line
    assert "reason='schema_violation'" in line and "count=3" in line


def test_repeated_warnings_are_one_line_per_key_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    summary = WarningSummary(logging.getLogger("t"), "event dead-lettered", 10.0, lambda: now[0])
    with caplog.at_level("WARNING", logger="t"):
        for i in range(500):
            now[0] = i * 0.01  # five seconds of refusals
            summary.warn(("positions", "schema_violation"), {"offset": i})
        summary.warn(("positions", "future_timestamp"), {"offset": 999})
        assert [r.count for r in caplog.records] == [1, 1]  # type: ignore[attr-defined]
        now[0] = 11.0
        summary.flush(now[0])
    counts = [(r.reason if hasattr(r, "reason") else None, r.count, r.offset)  # type: ignore[attr-defined]
              for r in caplog.records]  # fmt: skip
    assert counts[2:] == [(None, 499, 499)]  # the rest of the burst, with the last one's context
    summary.flush()
    assert len(caplog.records) == 3  # the single future timestamp needs no second line
