"""Failure classes of a job and how each maps to the protocol's error kinds.

transient: retrying later may succeed (storage or network trouble);
user: the user must change something (dataset, labels, hyperparameters);
permanent: anything else (a bug, an unsupported setup) - fail fast, keep partial results.
"""

from __future__ import annotations

from trainer_runner.schemas import ErrorKind


class UserError(Exception):
    """Something the user can fix: bad dataset, labels or hyperparameters."""


class DatasetError(UserError):
    """The dataset in object storage cannot be trained on as it is."""


class JobCancelled(Exception):  # noqa: N818 - reads as an event, not an error
    """Raised inside training when a cancel was requested; stops at the next batch."""


_TRANSIENT_S3_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"}


def classify(exc: BaseException) -> ErrorKind:
    """Map an exception raised by a job to the kind the backend acts on (retry, fail, tell user)."""
    import httpx
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    if isinstance(exc, UserError):
        return "user"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return "transient" if status >= 500 or error.get("Code") in _TRANSIENT_S3_CODES else "permanent"
    if isinstance(exc, EndpointConnectionError | BotoCoreError | httpx.TransportError):
        return "transient"
    if isinstance(exc, ConnectionError | TimeoutError):
        return "transient"
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch
        return "user"
    return "permanent"
