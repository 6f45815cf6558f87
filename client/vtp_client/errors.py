"""Typed errors. Each carries the server's own sentence (`message`) and the HTTP status.

The server answers every refusal as `{"detail": "<one sentence>"}`; request validation answers
a list of field errors and a rejected dataset upload adds `problems`. Callers catch the class
they can act on (`NotFound`, `RateLimited`, ...) or `VtpError` for all of them.
"""

from __future__ import annotations

from typing import Any

import httpx


class VtpError(Exception):
    """Any refusal or failure talking to the platform."""

    status_code: int | None = None

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.body = body


class ConnectionFailed(VtpError):
    """The server could not be reached (wrong URL, stack not running, network down)."""


class BadRequest(VtpError):
    status_code = 400


class Unauthorized(VtpError):
    """No credentials, or a token that is unknown, expired or revoked: sign in again."""

    status_code = 401


class PermissionDenied(VtpError):
    status_code = 403


class NotFound(VtpError):
    status_code = 404


class Conflict(VtpError):
    """The action does not fit the resource's state (a finished job, a full queue)."""

    status_code = 409


class PayloadTooLarge(VtpError):
    status_code = 413


class InvalidInput(VtpError):
    """422: a field the server refused. A rejected upload lists every problem in `problems`."""

    status_code = 422

    @property
    def problems(self) -> list[dict[str, Any]]:
        if isinstance(self.body, dict) and isinstance(self.body.get("problems"), list):
            return list(self.body["problems"])
        return []


class RateLimited(VtpError):
    """429 after the client's own retries: `retry_after_s` says how long the server asked to wait."""

    status_code = 429

    def __init__(self, message: str, *, retry_after_s: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class ServerError(VtpError):
    """5xx: the platform (or a service behind it, such as the trainer) failed."""


class JobFailed(VtpError):
    """Raised by `jobs.wait(..., raise_on_failure=True)` when the job ends failed or cancelled."""

    def __init__(self, message: str, *, job: Any) -> None:
        super().__init__(message)
        self.job = job


_BY_STATUS: dict[int, type[VtpError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
}


def server_message(body: Any, fallback: str) -> str:
    """The sentence to show: `detail` as sent, or request-validation errors as `field: message`."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", []) if p not in ("body", "query", "path"))
                parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", "")))
        if parts:
            return "; ".join(parts)
    return fallback


def from_response(response: httpx.Response, *, retry_after_s: float = 0.0) -> VtpError:
    """The typed error for a refused response."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    status = response.status_code
    message = server_message(
        body, f"HTTP {status} from {response.request.method} {response.request.url.path}"
    )
    if status == 429:
        return RateLimited(message, retry_after_s=retry_after_s, status_code=status, body=body)
    if status >= 500:
        return ServerError(message, status_code=status, body=body)
    cls = _BY_STATUS.get(status, VtpError)
    return cls(message, status_code=status, body=body)
