"""The README is the user's manual: every setting and topic must be in it."""

from pathlib import Path

from schemas.catalog import CATALOG
from schemas.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"SITROOM_{name.upper()}"
        for name in Settings.model_fields
        if f"`SITROOM_{name.upper()}`" not in README
    ]
    assert missing == []


def test_every_topic_is_documented() -> None:
    assert [t.name for t in CATALOG if f"`{t.name}`" not in README] == []


def test_quick_start_is_the_two_make_commands() -> None:
    assert "make run" in README and "make test" in README
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "make test" in ci
