"""What the fleet has free, for the training form (both channels read the trainer's GET /capacity)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from services.domain import fleet
from services.infra.trainer_client import CircuitBreakerError, TrainerClient


@dataclass
class FleetView:
    """One line for people ("2 nodes (ray) · 1/2 A100 free · 6/8 CPUs free") and the accelerator
    types a job may ask for."""

    summary: str
    accelerators: list[str] = field(default_factory=list)


def fleet_view() -> FleetView:
    """Ask the trainer gateway now (blocking; run in a thread). Never raises: a trainer that does
    not answer is a line saying so, since jobs still queue and wait for it."""
    try:
        body = TrainerClient.from_settings().capacity_sync()
    except (httpx.HTTPError, CircuitBreakerError, ValueError):
        return FleetView("The trainer is not reachable right now; jobs wait until it is.")
    if body is None:
        return FleetView("This trainer does not report its capacity (one job at a time).")
    capacity = fleet.Capacity.model_validate(body)
    return FleetView(fleet.free_summary(capacity), fleet.accelerators(capacity))
