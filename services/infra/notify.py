"""Sending one notification: to an Apprise URL, to a signed webhook, or by e-mail over SMTP.

These functions only send and report; what to send, to whom, and the delivery log are the domain's
(services.domain.notifications), and retries are the worker's (services.runtime.worker). Each
raises `SendError` with a message fit for the delivery log, which never contains the target's
secrets.

A webhook's body is JSON, signed exactly like the trainer's callbacks (services.infra.signing):
`X-VTP-Timestamp` is the Unix time, `X-VTP-Signature` the hex HMAC-SHA256, under the rule's secret,
of `"<timestamp>." + body`. docs/notifications.md shows how a receiver checks it.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import apprise
import httpx

from services.infra import signing
from services.infra.settings import get_settings

EVENT_HEADER = "X-VTP-Event"
log = logging.getLogger("vtp.notify")


class SendError(Exception):
    """One attempt failed; the message says why (no secrets) and goes into the delivery log."""


def apprise_plugin(url: str) -> Any | None:
    """Apprise's handler for `url`, or None when Apprise does not know the URL's service."""
    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def masked(kind: str, url: str) -> str:
    """`url` as it may be shown back: Apprise's own privacy form (tokens shortened to their ends,
    passwords starred) for its services; scheme, host and the path's last 4 characters for a
    webhook, whose path and query often are the secret."""
    if kind == "apprise":
        plugin = apprise_plugin(url)
        shown = plugin.url(privacy=True) if plugin is not None else url.split(":", 1)[0] + "://…"
        return str(shown).split("?", 1)[0]
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    rest = (parts.path + ("?" + parts.query if parts.query else "")).lstrip("/")
    tail = f"/…{rest[-4:]}" if len(rest) > 8 else ("/…" if rest else "")
    return f"{parts.scheme}://{host}{port}{tail}"


async def send_apprise(url: str, *, title: str, body: str) -> None:
    """Send through Apprise; its own log lines (at warning and above) explain a failure."""
    sender = apprise.Apprise()
    if not sender.add(url):
        raise SendError("Apprise no longer accepts this URL")
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        ok = await sender.async_notify(body=body or title, title=title)
    if not ok:
        why = " ".join(line.strip() for line in captured.getvalue().splitlines()[-2:])
        raise SendError(f"Apprise could not send: {why or 'no reason given'}"[:480])


def signed_headers(secret: str, body: bytes, event: str) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        EVENT_HEADER: event,
        signing.TIMESTAMP_HEADER: str(timestamp),
        signing.SIGNATURE_HEADER: signing.sign(secret, timestamp, body),
    }


async def send_webhook(url: str, *, secret: str, event: str, payload: dict[str, Any]) -> None:
    """POST the signed JSON body; any answer but 2xx is a failure (retried by the worker)."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    try:
        async with httpx.AsyncClient(timeout=get_settings().notify_timeout_s) as client:
            answer = await client.post(url, content=body, headers=signed_headers(secret, body, event))
    except httpx.HTTPError as exc:
        raise SendError(f"webhook unreachable ({type(exc).__name__})") from exc
    if not answer.is_success:
        raise SendError(f"webhook answered {answer.status_code}")


def smtp_configured() -> bool:
    return bool(get_settings().smtp_host)


def send_email(to: str, *, subject: str, body: str) -> None:
    """One plain-text message through the configured SMTP server (blocking: run it in a thread)."""
    settings = get_settings()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.smtp_from, to, subject
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.notify_timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp.login(settings.smtp_username, password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise SendError(f"SMTP server {settings.smtp_host}:{settings.smtp_port}: {exc}"[:480]) from exc
