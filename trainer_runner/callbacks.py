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

from trainer_runner.logs import REQUEST_ID_HEADER
from trainer_runner.schemas import CallbackEvent

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-VTP-Timestamp"
SIGNATURE_HEADER = "X-VTP-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 over `"{timestamp}." + body`, keyed by the job's callback secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, timestamp: str | None, signature: str | None, body: bytes) -> bool:
    """Whether a callback's headers sign `body` with `secret` (the stand-in backend checks with it)."""
    if not timestamp or not timestamp.isdigit() or not signature:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers that authenticate `body`; the timestamp lets the backend refuse replays."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
    }


# 4xx answers that mean "later" rather than "never".
RETRYABLE_4XX = frozenset({408, 425, 429})


def retryable(exc: BaseException) -> bool:
    """Network errors, 5xx (and 408/425/429) may pass on a later try; other 4xx never will
    (401 bad signature, 404 unknown job, 422 refused event: the event is dropped)."""
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return code >= 500 or code in RETRYABLE_4XX
    return isinstance(exc, httpx.TransportError)


class CallbackSender:
    """Sends events for one job; thread-safe (the heartbeat thread shares it)."""

    def __init__(
        self, url: str, secret: str, *, tries: int = 5, timeout_s: float = 10.0, request_id: str | None = None
    ) -> None:
        self.url = url
        # The id of the request that submitted the job: the backend's log lines of each callback
        # carry it (X-Request-ID), like those of the request itself.
        self.request_id = request_id
        self.secret = secret
        self.tries = tries
        self.timeout_s = timeout_s
        self._client = httpx.Client(timeout=timeout_s)

    @property
    def batch_url(self) -> str:
        """Where several events of this job go in one request (protocol v1.6)."""
        return self.url.rstrip("/") + "/batch"

    def post_once(self, body: bytes, *, url: str | None = None) -> httpx.Response:
        """One signed POST (to the callback URL, or `url`); raises httpx.HTTPStatusError for a
        non-2xx answer.

        Signed per try, so a retry after minutes still carries a fresh timestamp.
        """
        headers = signed_headers(self.secret, body)
        if self.request_id:
            headers[REQUEST_ID_HEADER] = self.request_id
        response = self._client.post(url or self.url, content=body, headers=headers)
        response.raise_for_status()
        return response

    def send(self, event: CallbackEvent) -> bool:
        """Deliver one event; False (and a log line) when refused or the backend stayed unreachable.

        A lost callback must not stop training: the backend also learns from heartbeats and
        from `GET /jobs/{job_id}`.
        """
        body = event.model_dump_json().encode()
        post = retry(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(self.tries),
            wait=wait_exponential(multiplier=0.5, max=8),
            reraise=True,
        )(self.post_once)
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
