"""HTTP client for the trainer service. It knows the wire protocol, never the trainer's code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from services.settings import get_settings


class TrainerBusy(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"trainer busy, retry after {retry_after_s}s")
        self.retry_after_s = retry_after_s


class TrainerRejected(Exception):
    """4xx other than 429: the request itself is wrong; retrying will not help."""


@dataclass
class TrainerClient:
    base_url: str
    timeout_s: float = 30.0

    @classmethod
    def from_settings(cls) -> TrainerClient:
        return cls(base_url=get_settings().trainer_base_url)

    async def start_job(self, spec: dict[str, Any]) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s) as client:
            response = await client.post("/jobs", json=spec)
        if response.status_code == 429:
            raise TrainerBusy(float(response.headers.get("Retry-After", "5")))
        if 400 <= response.status_code < 500:
            raise TrainerRejected(f"trainer refused the job ({response.status_code}): {response.text[:500]}")
        response.raise_for_status()
        return response.json()

    async def job_status(self, job_id: int) -> dict[str, Any] | None:
        """The trainer's view of a job (`state`, `attempt`, `epoch`); None if it does not know it."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s) as client:
            response = await client.get(f"/jobs/{job_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    async def cancel_job(self, job_id: int) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s) as client:
            response = await client.post(f"/jobs/{job_id}/cancel")
        if response.status_code not in (200, 202, 404):
            response.raise_for_status()
