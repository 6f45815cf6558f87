"""Optional error tracking with sentry-sdk: on when `VTP_SENTRY_DSN` is set (web and worker; the
trainer has its own copy, trainer_runner/errortracking.py).

Events carry the ids of services.infra.logs as tags (request_id, job_id, attempt, user_id,
project_id), so an error in Sentry leads to the same lines as `grep` over the logs. No secret
leaves: sentry's scrubber drops values under sensitive keys (passwords, tokens, secrets,
Authorization, cookies) everywhere in the event, and `scrub_text` blanks bearer tokens and
`key=value` secrets inside messages and exception texts.
"""

from __future__ import annotations

import re
from typing import Any

import sentry_sdk
from sentry_sdk.scrubber import DEFAULT_DENYLIST, DEFAULT_PII_DENYLIST, EventScrubber

from services.infra import logs
from services.infra.settings import get_settings

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
    """Tag with the ids known where the error happened; blank secrets inside texts."""
    event.setdefault("tags", {}).update({k: str(v) for k, v in logs.current().items()})
    scrubbed: dict[str, Any] = _scrub_strings(event)
    return scrubbed


def init(process: str) -> bool:
    """Start error tracking for this process when a DSN is configured; True when on."""
    dsn = get_settings().sentry_dsn.get_secret_value()
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        send_default_pii=False,
        event_scrubber=EventScrubber(denylist=DENYLIST, recursive=True),
        before_send=before_send,  # type: ignore[arg-type]
        traces_sample_rate=0,
    )
    sentry_sdk.set_tag("process", process)
    return True
