"""What a connector did with what it read: published, skipped on purpose, dead-lettered.

Every record a connector reads ends in exactly one of the three, so ``read`` is their sum;
a replay ends with one summary line of it, and a replay that published nothing exits
non-zero (:class:`NothingUsable`), whatever the reason was.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm


class NothingUsable(RuntimeError):
    """A finite source ended without publishing one event."""


@dataclass
class Tally:
    published: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason → records
    dead_lettered: Counter[str] = field(default_factory=Counter)  # reason → records

    @property
    def read(self) -> int:
        return self.published + sum(self.skipped.values()) + sum(self.dead_lettered.values())

    def fields(self) -> dict[str, Any]:
        """The summary as log context."""
        return {
            "read": self.read,
            "published": self.published,
            "skipped": dict(sorted(self.skipped.items())),
            "dead_lettered": dict(sorted(self.dead_lettered.items())),
        }

    def sentence(self) -> str:
        """The summary in words, reasons with their counts, most frequent first."""

        def reasons(counter: Counter[str]) -> str:
            if not counter:
                return "0"
            parts = ", ".join(f"{reason} {n:,}" for reason, n in counter.most_common())
            return f"{sum(counter.values()):,} ({parts})"

        return (
            f"read {self.read:,}, published {self.published:,}, "
            f"skipped {reasons(self.skipped)}, dead-lettered {reasons(self.dead_lettered)}"
        )


class Progress:
    """A progress bar on a terminal; nothing elsewhere (the caller logs plain lines)."""

    def __init__(self, name: str, total: int | None = None) -> None:
        self.bar: tqdm[Any] | None = None
        if sys.stderr.isatty():
            self.bar = tqdm(total=total, desc=name, unit=" rec", file=sys.stderr, leave=True)

    @property
    def on_terminal(self) -> bool:
        return self.bar is not None

    def update(self, tally: Tally) -> None:
        if self.bar is not None:
            self.bar.n = tally.read
            self.bar.set_postfix(published=tally.published, refused=sum(tally.dead_lettered.values()), refresh=False)  # fmt: skip
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
