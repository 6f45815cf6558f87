"""Sweeps: create, list, read, cancel, and train the best trial. Parse, call services.actions.sweeps."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CurrentActor, PathId
from services.actions import sweeps
from services.domain.schemas import JobPublic, SweepCreate, SweepDetail, SweepPublic

router = APIRouter(prefix="/projects/{project_id}/sweeps", tags=["sweeps"])


@router.get("")
def list_sweeps(project_id: PathId, actor: CurrentActor) -> list[SweepPublic]:
    """Newest first, each with its progress and best value so far."""
    return sweeps.sweep_list(actor, project_id=project_id)


@router.post("", status_code=201)
async def create_sweep(project_id: PathId, body: SweepCreate, actor: CurrentActor) -> SweepPublic:
    """Validated against the trainer's catalogue; the worker then starts the first trials as jobs."""
    return await sweeps.create(actor, project_id=project_id, request=body)


@router.get("/{sweep_id}")
def get_sweep(project_id: PathId, sweep_id: PathId, actor: CurrentActor) -> SweepDetail:
    return sweeps.sweep_detail(actor, project_id=project_id, sweep_id=sweep_id)


@router.post("/{sweep_id}/cancel")
async def cancel_sweep(project_id: PathId, sweep_id: PathId, actor: CurrentActor) -> SweepPublic:
    """Waiting trials are cancelled at once, running ones stop at the trainer's next batch."""
    return await sweeps.cancel(actor, project_id=project_id, sweep_id=sweep_id)


@router.post("/{sweep_id}/train-best", status_code=201)
async def train_best(project_id: PathId, sweep_id: PathId, actor: CurrentActor) -> JobPublic:
    """A new ordinary job with the best trial's hyperparameters."""
    return await sweeps.train_best(actor, sweep_id=sweep_id, project_id=project_id)
