"""Logging for the trainer: JSON lines (python-json-logger) on stdout and in the job log file,
with the same ids as the backend's lines (`request_id`, `job_id`, `attempt`); human-readable
lines on stdout when it is a terminal. The trainer keeps its own copy: it imports nothing of the
backend."""

from __future__ import annotations

import collections
import logging
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pythonjsonlogger.json

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


# The ids a line may concern; the same names as the backend's lines, so one grep follows a job.
IDS = ("request_id", "job_id", "attempt", "user_id", "project_id")
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENV = "TRAINER_REQUEST_ID"  # the job child's copy of the header that started it
_ids: ContextVar[dict[str, Any] | None] = ContextVar("trainer_log_ids", default=None)


def log_id(value: Any) -> Any:
    """Job ids are strings on the wire but numbers in the backend's lines: `"job_id": 42` in every
    process's log, so `grep '"job_id": 42'` finds them all."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """Ids for every line logged inside (a request, an attempt)."""
    token = _ids.set({**(_ids.get() or {}), **{k: log_id(v) for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _ids.reset(token)


def current() -> dict[str, Any]:
    return dict(_ids.get() or {})


class JsonFormatter(pythonjsonlogger.json.JsonFormatter):
    """One JSON object per line (python-json-logger), with static context (job id, attempt) and
    the ids of the open scope on every line; terminal colours stripped from messages."""

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="ts",  # ISO 8601 in UTC
            static_fields={k: log_id(v) for k, v in (context or {}).items()},
            json_default=str,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["message"] = clean_message(record)
        for key, value in current().items():
            log_data.setdefault(key, value)
        for key in IDS:
            if key in log_data:
                log_data[key] = log_id(log_data[key])


class ConsoleFormatter(logging.Formatter):
    """Human-readable lines for a terminal, the ids at the end."""

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
        self.context = context or {}

    def format(self, record: logging.LogRecord) -> str:
        record.msg, record.args = clean_message(record), None
        line = super().format(record)
        known = {**self.context, **current(), **{k: getattr(record, k) for k in IDS if hasattr(record, k)}}
        ids = " ".join(f"{k}={known[k]}" for k in IDS if known.get(k) is not None)
        return f"{line}  [{ids}]" if ids else line


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
    context: dict[str, Any] | None = None,
    log_file: Path | None = None,
    level: int = logging.INFO,
    fmt: str = "auto",
) -> None:
    """Route the root logger to stdout (and `log_file`, always JSON lines), replacing other handlers.

    stdout gets JSON unless it is a terminal (`fmt`, TRAINER_LOG_FORMAT: json, console, auto).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(ConsoleFormatter(context) if console else JsonFormatter(context))
    root.addHandler(stdout)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(JsonFormatter(context))
        root.addHandler(to_file)
    root.setLevel(level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
