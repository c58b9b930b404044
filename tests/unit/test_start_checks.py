"""A bad rule book (or report routing) stops `sitroom up` / `worker` before anything
starts: one line on stderr, exit code 2."""

from pathlib import Path

import pytest

from schemas.settings import Settings
from sitroom import cli
from sitroom.runtime import ConfigError, load_rule_book

ZERO_SILENCE = """
[sources.silent_after_s]
gtfs-rt = 0
[[rule]]
kind = "x"
domain = "d"
[[rule.level]]
name = "a"
severity = "warning"
raise = 1.0
clear = 1.0
"""


@pytest.mark.parametrize("command", ["worker", "up"])
def test_a_bad_rule_book_stops_the_start_with_one_line(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(ZERO_SILENCE)
    monkeypatch.setenv("SITROOM_ALARM_RULES", str(rules))
    monkeypatch.setenv("SITROOM_DATA_DIR", str(tmp_path / "data"))
    # No broker and no embedded one: the check must come before either is needed.
    monkeypatch.setenv("SITROOM_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    assert cli.main([command]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("sitroom: bad alarm rule book: ")
    assert str(rules) in lines[0] and "sources.silent_after_s.gtfs-rt" in lines[0]
    assert not (tmp_path / "data").exists()  # nothing started


def test_the_worker_service_loads_the_book_through_the_same_check(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(ZERO_SILENCE)
    settings = Settings(_env_file=None, alarm_rules=rules)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="greater than 0"):
        load_rule_book(settings)
    assert load_rule_book(Settings(_env_file=None)).rules  # type: ignore[call-arg]
