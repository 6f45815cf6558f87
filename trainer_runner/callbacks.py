"""Signed HTTP callbacks from the trainer to the backend (protocol: X-VTP-* headers)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import httpx
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from trainer_runner.schemas import CallbackEvent

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-VTP-Timestamp"
SIGNATURE_HEADER = "X-VTP-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 over `"{timestamp}." + body`, keyed by the job's callback secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers that authenticate `body`; the timestamp lets the backend refuse replays."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
    }


def _retryable(exc: BaseException) -> bool:
    """Network errors and 5xx may pass on a later try; a 4xx never will."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


class CallbackSender:
    """Sends events for one job; thread-safe (the heartbeat thread shares it)."""

    def __init__(self, url: str, secret: str, *, tries: int = 5, timeout_s: float = 10.0) -> None:
        self.url = url
        self.secret = secret
        self.tries = tries
        self._client = httpx.Client(timeout=timeout_s)

    def _post_once(self, body: bytes) -> httpx.Response:
        # Signed per try, so a retry after minutes still carries a fresh timestamp.
        response = self._client.post(
            self.url, content=body, headers=signed_headers(self.secret, body)
        )
        response.raise_for_status()
        return response

    def send(self, event: CallbackEvent) -> bool:
        """Deliver one event; False (and a log line) when refused or the backend stayed unreachable.

        A lost callback must not stop training: the backend also learns from heartbeats and
        from `GET /jobs/{job_id}`.
        """
        body = event.model_dump_json().encode()
        post = retry(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.tries),
            wait=wait_exponential(multiplier=0.5, max=8),
            reraise=True,
        )(self._post_once)
        try:
            post(body)
        except (httpx.HTTPError, OSError) as exc:
            log.warning(
                "callback not delivered",
                extra={"event_type": event.type, "event_id": event.event_id, "error": str(exc)},
            )
            return False
        return True

    def close(self) -> None:
        self._client.close()
