"""Structured logs: one JSON object per line (or text with ``key=value`` context), with the
``extra`` fields of each call; and summaries of warnings that repeat."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# Fields a log shipper reads as the line's own: context must never take these names.
RESERVED = ("time", "level", "logger", "message")
# Attributes every LogRecord has; the rest of its __dict__ is a call's context.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class _KeepContextApart(logging.Filter):
    """A context field named like a line field (``level``: an alarm's level) would be read
    as the log level: it is renamed ``context_<name>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in ("time", "level", "logger"):
            if name in record.__dict__:
                record.__dict__[f"context_{name}"] = record.__dict__.pop(name)
        return True


class _TextWithContext(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}
        if not context:
            return line
        head, sep, tail = line.partition("\n")  # a traceback stays below the line
        return head + "".join(f" {k}={v!r}" for k, v in context.items()) + sep + tail


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(_TextWithContext("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_KeepContextApart())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # faust and aiokafka are chatty at INFO about every rebalance step.
    for noisy in ("aiokafka", "faust", "mode", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class WarningSummary:
    """A warning that repeats (a bad feed refusing item after item) as one line per key
    (reason and source) per interval: the first at once, then the count of the others with
    the last one's context, at most once per ``interval_s``."""

    def __init__(self, logger: logging.Logger, message: str, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.logger, self.message, self.interval_s, self.clock = logger, message, interval_s, clock
        # key → [window start, repeats since, the last repeat's context]
        self._windows: dict[tuple[str, ...], list[Any]] = {}

    def warn(self, key: tuple[str, ...], extra: dict[str, Any]) -> None:
        now = self.clock()
        self.flush(now)
        window = self._windows.get(key)
        if window is None:
            self.logger.warning(self.message, extra={**extra, "count": 1})
            self._windows[key] = [now, 0, extra]
        else:
            window[1] += 1
            window[2] = extra

    def flush(self, now: float | None = None) -> None:
        """Say what repeated in windows that are over (all of them when ``now`` is None)."""
        for key, (start, repeats, extra) in list(self._windows.items()):
            if now is not None and now - start < self.interval_s:
                continue
            del self._windows[key]
            if repeats:
                self.logger.warning(self.message, extra={
                    **extra, "count": repeats, "repeated_within_s": self.interval_s})  # fmt: skip
