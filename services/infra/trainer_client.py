"""HTTP client for the trainer service. It knows the wire protocol, never the trainer's code.

The worker's calls go through one circuit breaker per process: after
`VTP_TRAINER_BREAKER_FAILURES` connection failures in a row it stops calling the trainer for
`VTP_TRAINER_BREAKER_RESET_S` and fails at once with `CircuitBreakerError`, so a dead trainer
costs one quick refusal per job instead of a timeout each (docs/failure-handling.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import httpx
from circuitbreaker import CircuitBreaker, CircuitBreakerError

from services.infra.settings import get_settings

__all__ = ["CircuitBreakerError", "TrainerBusy", "TrainerClient", "TrainerRejected", "breaker"]


@lru_cache
def breaker() -> CircuitBreaker:
    settings = get_settings()
    return CircuitBreaker(
        failure_threshold=settings.trainer_breaker_failures,
        recovery_timeout=settings.trainer_breaker_reset_s,
        expected_exception=httpx.TransportError,
        name="trainer",
    )


class TrainerBusy(Exception):
    """429: the trainer cannot place the job now; `waiting_for` says what it lacks (v1.4)."""

    def __init__(self, retry_after_s: float, waiting_for: str | None = None) -> None:
        super().__init__(
            f"trainer busy (waiting for {waiting_for or 'a free place'}), retry after {retry_after_s}s"
        )
        self.retry_after_s = retry_after_s
        self.waiting_for = waiting_for


def _busy(response: httpx.Response) -> TrainerBusy:
    try:
        body = response.json()
    except ValueError:
        body = {}
    waiting_for = body.get("waiting_for") if isinstance(body, dict) else None
    return TrainerBusy(
        float(response.headers.get("Retry-After", "5")), str(waiting_for) if waiting_for else None
    )


class TrainerRejected(Exception):
    """4xx other than 429: the request itself is wrong; retrying will not help."""


@dataclass
class TrainerClient:
    base_url: str
    timeout_s: float = 30.0
    # A long-lived caller (the dispatcher, asking once a second) passes one client to reuse its
    # connection; without one each call opens its own, which suits one-off calls from any loop.
    http: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, *, keep_alive: bool = False) -> TrainerClient:
        base_url = get_settings().trainer_base_url
        http = httpx.AsyncClient(base_url=base_url, timeout=30.0) if keep_alive else None
        return cls(base_url=base_url, http=http)

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call through the breaker; only transport failures (no answer) count against it."""

        async def send() -> httpx.Response:
            if self.http is not None:
                return await self.http.request(method, path, **kwargs)
            async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s) as client:
                return await client.request(method, path, **kwargs)

        guarded = cast(Callable[[], Awaitable[httpx.Response]], breaker()(send))
        return await guarded()

    async def capacity(self) -> dict[str, Any] | None:
        """GET /capacity (v1.4): nodes and what each has free; None from a trainer before v1.4."""
        response = await self._request("GET", "/capacity")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def start_job(self, spec: dict[str, Any], *, request_id: str | None = None) -> dict[str, Any]:
        """POST /jobs; `request_id` (X-Request-ID) travels with the attempt into the trainer's log
        lines and comes back on its callbacks."""
        headers = {"X-Request-ID": request_id} if request_id else None
        response = await self._request("POST", "/jobs", json=spec, headers=headers)
        if response.status_code == 429:
            raise _busy(response)
        if 400 <= response.status_code < 500:
            raise TrainerRejected(f"trainer refused the job ({response.status_code}): {response.text[:500]}")
        response.raise_for_status()
        return _object(response)

    async def job_status(self, job_id: int) -> dict[str, Any] | None:
        """The trainer's view of a job (`state`, `attempt`, `epoch`); None if it does not know it."""
        response = await self._request("GET", f"/jobs/{job_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return _object(response)

    async def cancel_job(self, job_id: int) -> None:
        response = await self._request("POST", f"/jobs/{job_id}/cancel")
        if response.status_code not in (200, 202, 404):
            response.raise_for_status()

    # --- v1.1: catalogue, export, predict (synchronous: callers run them in a worker thread) ---

    def capacity_sync(self) -> dict[str, Any] | None:
        """GET /capacity for the train form; None from a trainer before v1.4."""
        with httpx.Client(base_url=self.base_url, timeout=min(self.timeout_s, 5.0)) as client:
            response = client.get("/capacity")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def plugins_sync(self) -> dict[str, Any]:
        """GET /plugins: frameworks, tasks, models and typed hyperparameters."""
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as client:
            response = client.get("/plugins")
        response.raise_for_status()
        body = _object(response)
        if not isinstance(body.get("frameworks"), list):
            raise ValueError("trainer /plugins answered something that is not a catalogue")
        return body

    def export_sync(self, *, model_uri: str, output_uri: str, formats: list[str]) -> dict[str, Any]:
        """POST /export (synchronous on the trainer; can take tens of seconds)."""
        body = {"model_uri": model_uri, "output_uri": output_uri, "formats": formats}
        with httpx.Client(base_url=self.base_url, timeout=max(self.timeout_s, 300.0)) as client:
            response = client.post("/export", json=body)
        _raise_for_trainer(response)
        return _object(response)

    def predict_sync(self, *, model_uri: str, image_uri: str, conf: float = 0.25) -> dict[str, Any]:
        """POST /predict: boxes/classes/scores (or class probabilities) for one image."""
        body = {"model_uri": model_uri, "image_uri": image_uri, "conf": conf}
        with httpx.Client(base_url=self.base_url, timeout=max(self.timeout_s, 120.0)) as client:
            response = client.post("/predict", json=body)
        _raise_for_trainer(response)
        return _object(response)

    def inspect_sync(
        self, *, weights_uri: str, filename: str, architecture: str | None = None
    ) -> dict[str, Any]:
        """POST /inspect (v1.5): framework, task, architecture and classes of a weights file,
        loaded the safe way; TrainerRejected (422) names what is wrong with the file."""
        body = {"weights_uri": weights_uri, "filename": filename, "architecture": architecture}
        with httpx.Client(base_url=self.base_url, timeout=max(self.timeout_s, 120.0)) as client:
            response = client.post("/inspect", json=body)
        _raise_for_trainer(response)
        return _object(response)


def _object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; anything else means the URL is not a trainer."""
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"the trainer answered {type(body).__name__}, not a JSON object")
    return body


def _raise_for_trainer(response: httpx.Response) -> None:
    if response.status_code == 429:
        raise _busy(response)
    if 400 <= response.status_code < 500:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:500]
        if isinstance(detail, list):
            detail = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg', '')}" for d in detail
            )
        raise TrainerRejected(str(detail)[:1000])
    response.raise_for_status()
