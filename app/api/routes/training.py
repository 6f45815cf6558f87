"""Training beyond create/list/cancel: the trainer's catalogue, retry, artifacts, validation,
export, inference, run comparison and usage analytics. Routes parse and shape; services decide."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile

from app.api.deps import CurrentUser, PathId, SessionDep
from services.domain import catalog, experiments, jobs, model_ops
from services.domain.permissions import Action, authorize
from services.domain.schemas import ExportRequest, JobPublic, RetryRequest
from services.errors import InvalidInput
from services.infra.queue import enqueue_dispatch

router = APIRouter(tags=["training"])
JOB = "/projects/{project_id}/jobs/{job_id}"


@router.get("/plugins")
def plugins(_user: CurrentUser) -> dict[str, Any]:
    """The trainer's catalogue (frameworks, tasks, models, hyperparameters with type/default/range)."""
    doc = catalog.get_catalog().doc
    return {**doc, "devices": list(catalog.DEVICES)}


@router.post(JOB + "/retry", status_code=201)
async def retry_job(
    project_id: PathId,
    job_id: PathId,
    session: SessionDep,
    user: CurrentUser,
    body: RetryRequest | None = None,
) -> JobPublic:
    """A failed or cancelled job again, as a new job; `resume` continues from its last checkpoint."""
    authorize(session, user=user, project_id=project_id, action=Action.job_read)
    job = jobs.get_job(session, project_id=project_id, job_id=job_id)
    new = await asyncio.to_thread(jobs.retry, session, job, user, resume=(body or RetryRequest()).resume)
    session.commit()
    await enqueue_dispatch(new.id, new.attempt)
    return JobPublic.of(new)


@router.get(JOB + "/artifacts")
def artifacts(
    project_id: PathId,
    job_id: PathId,
    session: SessionDep,
    user: CurrentUser,
) -> list[dict[str, Any]]:
    """Every file the job left in object storage, each with a short-lived download URL."""
    rows = model_ops.artifact_rows(session, user=user, project_id=project_id, job_id=job_id)
    for row in rows:
        row["download_url"] = model_ops.download_url(
            session, user=user, project_id=project_id, job_id=job_id, key=row["key"]
        )
    return rows


@router.get(JOB + "/validation")
def validation(project_id: PathId, job_id: PathId, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The newest epoch's per-class AP, confusion matrix, PR curve, and the prediction samples."""
    return asdict(model_ops.validation_docs(session, user=user, project_id=project_id, job_id=job_id))


@router.post(JOB + "/export")
def export(
    project_id: PathId,
    job_id: PathId,
    session: SessionDep,
    user: CurrentUser,
    body: ExportRequest | None = None,
) -> dict[str, Any]:
    """Export the job's best checkpoint (ONNX, TorchScript) to its exports/ folder, with parity checks."""
    body = body or ExportRequest()
    plan = model_ops.prepare_export(
        session, user=user, project_id=project_id, job_id=job_id, formats=body.formats
    )
    result = model_ops.run_export(plan)
    model_ops.record_export(session, plan=plan, result=result)
    session.commit()
    return result


@router.post(JOB + "/predict")
async def predict(
    project_id: PathId,
    job_id: PathId,
    session: SessionDep,
    user: CurrentUser,
    image: Annotated[UploadFile, File(description="A PNG/JPEG/WebP/BMP image (up to the API's body limit)")],
) -> dict[str, Any]:
    """Run the job's model on one image: boxes/labels/scores (detect, segment) or class probabilities."""
    data = await image.read(model_ops.MAX_IMAGE_BYTES + 1)
    plan = model_ops.prepare_predict(
        session, user=user, project_id=project_id, job_id=job_id, image=data, filename=image.filename or ""
    )
    return {**await asyncio.to_thread(model_ops.run_predict, plan), "image_uri": plan.image_uri}


@router.get("/projects/{project_id}/compare")
def compare(
    project_id: PathId,
    session: SessionDep,
    user: CurrentUser,
    ids: Annotated[str, Query(description="Comma-separated job ids", max_length=6000)] = "",
) -> dict[str, Any]:
    """Chosen runs with all their per-epoch metrics, final metrics and hyperparameter differences."""
    try:
        job_ids = [int(part) for part in ids.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidInput("ids: comma-separated whole numbers") from exc
    found = experiments.compare_runs(session, user=user, project_id=project_id, job_ids=job_ids)
    return {
        "runs": [
            {**r, "created_at": r["created_at"].isoformat() if r["created_at"] else None} for r in found.runs
        ],
        "curves": {str(k): v for k, v in found.curves.items()},
        "final": {str(k): v for k, v in experiments.final_metrics(found.curves).items()},
        "hyperparameters": experiments.hyperparameter_rows(found.runs),
    }


@router.get("/analytics")
def analytics(
    session: SessionDep,
    user: CurrentUser,
    group_by: Annotated[str, Query(pattern="^(project|user)$")] = "project",
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> dict[str, Any]:
    """Jobs per day, success rate, compute hours (CPU vs GPU) and queue wait, per project or user."""
    return asdict(experiments.analytics(session, user=user, group_by=group_by, days=days))
