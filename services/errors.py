"""Typed domain errors. Routes and state classes turn them into messages; none carry secrets."""

from __future__ import annotations


class DomainError(Exception):
    """Base class; `status_code` is what the REST API answers."""

    status_code = 400

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        # For the audit log: why it was refused, where that differs from what the caller is told
        # (an outsider is told "does not exist"; the log says "not a member").
        self.reason = reason


BUSY = "The server is busy; try again in a moment"


class Overloaded(DomainError):
    """The server is saturated (no database connection or lock within the bounded wait): the REST
    API answers 503 + Retry-After, the web UI says it is busy and retries. Not a refusal: not audited."""

    status_code = 503

    def __init__(self, message: str = BUSY, retry_after_s: int = 1, *, cause: str = "busy") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.cause = cause  # what ran out (deadline, pool_timeout, db_locked): the shed counter's label


class NotFound(DomainError):
    """Also used for objects the caller may not see, so existence is not leaked."""

    status_code = 404


class PermissionDenied(DomainError):
    status_code = 403


class InvalidInput(DomainError):
    status_code = 422


class Unauthorized(DomainError):
    status_code = 401


class Conflict(DomainError):
    status_code = 409
