"""Log lines of the backend's processes (web, worker), with the ids of what each line concerns.

Every line carries `request_id`, `job_id`, `attempt`, `user_id` and `project_id` where they are
known, so one job's whole life is one grep over every process's log:
`grep '"job_id": 42' data/logs/*` (the trainer logs the same ids; a callback brings the request id
back as `X-Request-ID`).

- Ids live in a context variable: `bound(...)` opens a scope (a request, a dispatch), `bind(...)`
  adds to the open one in place, so what a route learns (the user, the project) also shows on the
  request's last line, written by the middleware that opened the scope.
- Format: JSON lines (python-json-logger) when the output is a file or `VTP_LOG_FORMAT=json`;
  human-readable lines on a terminal, or with `VTP_LOG_FORMAT=console`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

IDS = ("request_id", "job_id", "attempt", "user_id", "project_id")
REQUEST_ID_HEADER = "X-Request-ID"
# A caller's own request id is kept when it looks like one (no spaces, no control characters).
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Chatty at INFO (one line per call); their warnings still show.
_QUIET_LOGGERS = ("httpx", "httpcore", "botocore", "urllib3", "boto3", "s3transfer")

_ids: ContextVar[dict[str, Any] | None] = ContextVar("vtp_log_ids", default=None)


def current() -> dict[str, Any]:
    """The ids known here (a copy)."""
    return dict(_ids.get() or {})


@contextmanager
def bound(**ids: Any) -> Iterator[dict[str, Any]]:
    """A new scope: the enclosing scope's ids plus these (None values are left out)."""
    token = _ids.set({**(_ids.get() or {}), **_known(ids)})
    try:
        yield current()
    finally:
        _ids.reset(token)


def bind(**ids: Any) -> None:
    """Add ids to the open scope in place (its opener sees them too), or open one."""
    found = _ids.get()
    if found is None:
        _ids.set(_known(ids))
    else:
        found.update(_known(ids))


def _known(ids: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ids.items() if v is not None}


def request_id(offered: str | None = None) -> str:
    """The caller's request id when it is well-formed, else a new one."""
    if offered and _GOOD_REQUEST_ID.match(offered):
        return offered
    return uuid.uuid4().hex


class IdsFilter(logging.Filter):
    """Puts the scope's ids on each record (a field passed with `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_ids.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class ConsoleFormatter(logging.Formatter):
    """`12:00:01 INFO  vtp.dispatcher: handed over  [job_id=42 attempt=1]` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{k}={getattr(record, k)}" for k in IDS if getattr(record, k, None) is not None)
        return f"{line}  [{ids}]" if ids else line


def for_terminal(line: str) -> str:
    """A JSON log line as the console format shows it (other lines unchanged): what `vtp up`
    prints of its children's logs when a person watches."""
    if not line.startswith("{"):
        return line
    try:
        entry = json.loads(line)
        when, level, logger, message = entry["ts"], entry["level"], entry["logger"], entry["message"]
    except (ValueError, KeyError, TypeError):
        return line
    ids = " ".join(f"{k}={entry[k]}" for k in IDS if entry.get(k) is not None)
    text = f"{str(when)[11:19]} {str(level).upper():<7} {logger}: {message}"
    return f"{text}  [{ids}]" if ids else text


def json_formatter(process: str) -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="ts",  # ISO 8601 in UTC
        static_fields={"process": process},
        json_default=str,
    )


def configure(
    process: str, *, fmt: str = "auto", stream: TextIO | None = None, level: int = logging.INFO
) -> None:
    """Route the root logger (and the loggers of uvicorn and arq) to one handler on `stream`.

    `fmt`: "json", "console", or "auto" (console on a terminal, JSON otherwise).
    """
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter(process) if use_json else ConsoleFormatter())
    handler.addFilter(IdsFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        # A server's plain stream handler (basicConfig) is replaced; others (a test's log
        # capture, which subclasses StreamHandler) stay.
        if type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Servers' own loggers bring their own handlers: hand their lines to the root handler.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "arq.worker", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
