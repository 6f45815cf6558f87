"""JSON-lines logging for the trainer: one object per line on stdout and in the job log file."""

from __future__ import annotations

import collections
import json
import logging
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colours some libraries put in messages
# Chatty at INFO (one line per HTTP request): their warnings still show.
_QUIET_LOGGERS = ("httpx", "httpcore", "botocore", "urllib3")


def clean_message(record: logging.LogRecord) -> str:
    return _ANSI.sub("", record.getMessage()).strip()


class JsonFormatter(logging.Formatter):
    """Formats records as one JSON object, with static context (job id, attempt) on every line."""

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.context = context or {}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clean_message(record),
            **self.context,
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TailHandler(logging.Handler):
    """Keeps the last lines (plain messages) for the `log_tail` of heartbeats."""

    def __init__(self, size: int = 20) -> None:
        super().__init__()
        self._lines: collections.deque[str] = collections.deque(maxlen=size)
        self._lock_tail = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        message = clean_message(record)
        if message:
            with self._lock_tail:
                self._lines.append(f"{record.levelname}: {message}"[:500])

    def tail(self) -> list[str]:
        with self._lock_tail:
            return list(self._lines)


def configure_logging(
    context: dict[str, Any] | None = None, log_file: Path | None = None, level: int = logging.INFO
) -> None:
    """Route the root logger to JSON lines on stdout (and `log_file`), replacing other handlers."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = JsonFormatter(context)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
