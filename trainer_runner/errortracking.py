"""Optional error tracking with sentry-sdk for the trainer (`TRAINER_SENTRY_DSN`): the server and
each job process. The trainer's own copy of the backend's (it imports nothing of ours): the same
tags (request_id, job_id, attempt) and the same rule that no secret leaves: sentry's scrubber
drops values under sensitive keys (the callback secret, S3 keys, Authorization, ...) everywhere
in the event, and `scrub_text` blanks bearer tokens and `key=value` secrets inside texts.
"""

from __future__ import annotations

import re
from typing import Any

import sentry_sdk
from sentry_sdk.scrubber import DEFAULT_DENYLIST, DEFAULT_PII_DENYLIST, EventScrubber

from trainer_runner.logs import current
from trainer_runner.settings import TrainerSettings

FILTERED = "[Filtered]"
DENYLIST = [
    *DEFAULT_DENYLIST,
    *DEFAULT_PII_DENYLIST,
    "callback_secret",
    "secret_key",
    "access_key",
    "s3_secret_key",
    "x-vtp-signature",
    "signature",
    "dsn",
]
_SECRET_TEXT = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)((?:password|passwd|secret|token|api[_-]?key|authorization)[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&]+"
    ),
    re.compile(r"(://[^:/@\s]+:)[^@/\s]+(@)"),  # credentials inside a URL
]


def scrub_text(text: str) -> str:
    for pattern in _SECRET_TEXT:
        text = pattern.sub(lambda m: m.group(1) + FILTERED + (m.group(2) if m.re.groups > 1 else ""), text)
    return text


def _scrub_strings(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list):
        return [_scrub_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_strings(v) for k, v in value.items()}
    return value


def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("tags", {}).update({k: str(v) for k, v in current().items()})
    scrubbed: dict[str, Any] = _scrub_strings(event)
    return scrubbed


def init(settings: TrainerSettings, process: str, tags: dict[str, Any] | None = None) -> bool:
    """Start error tracking when a DSN is configured; True when on."""
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        send_default_pii=False,
        event_scrubber=EventScrubber(denylist=DENYLIST, recursive=True),
        before_send=before_send,  # type: ignore[arg-type]
        traces_sample_rate=0,
    )
    sentry_sdk.set_tag("process", process)
    for key, value in (tags or {}).items():
        if value is not None:
            sentry_sdk.set_tag(key, str(value))
    return True
