"""Training beyond create/list/cancel: the trainer's catalogue, retry, artifacts, validation,
export, inference, run comparison and usage analytics. Routes parse and shape; services decide."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import PlainTextResponse

from app.api.deps import DB_INT_MAX, CurrentActor, PathId
from services.actions import experiments, jobs, models, predictions
from services.domain import catalog, model_ops
from services.domain.experiments import QUERY_HELP, final_metrics, hyperparameter_rows
from services.domain.schemas import (
    ExportRequest,
    JobPublic,
    RetryRequest,
    RunTags,
    SavedComparisonCreate,
    SavedComparisonPublic,
)
from services.errors import InvalidInput

router = APIRouter(tags=["training"])
JOB = "/projects/{project_id}/jobs/{job_id}"
SORT_HELP = "newest, oldest, name, model, state, or metric:<name> (highest first)"


@router.get("/plugins")
def plugins(_actor: CurrentActor) -> dict[str, Any]:
    """The trainer's catalogue (frameworks, tasks, models, hyperparameters with type/default/range)."""
    doc = catalog.get_catalog().doc
    return {**doc, "devices": list(catalog.DEVICES)}


@router.post(JOB + "/retry", status_code=201)
async def retry_job(
    project_id: PathId, job_id: PathId, actor: CurrentActor, body: RetryRequest | None = None
) -> JobPublic:
    """A failed or cancelled job again, as a new job; `resume` continues from its last checkpoint."""
    resume = (body or RetryRequest()).resume
    return (await jobs.retry(actor, project_id=project_id, job_id=job_id, resume=resume)).job


@router.get(JOB + "/artifacts")
def artifacts(project_id: PathId, job_id: PathId, actor: CurrentActor) -> list[dict[str, Any]]:
    """Every file the job left in object storage, each with a short-lived download URL."""
    return models.artifacts(actor, project_id=project_id, job_id=job_id)


@router.get(JOB + "/validation")
def validation(project_id: PathId, job_id: PathId, actor: CurrentActor) -> dict[str, Any]:
    """The newest epoch's per-class AP, confusion matrix, PR curve, and the prediction samples."""
    return asdict(models.validation(actor, project_id=project_id, job_id=job_id))


@router.get(JOB + "/confusion")
def confusion_cell(
    project_id: PathId,
    job_id: PathId,
    actor: CurrentActor,
    true: Annotated[str, Query(min_length=1, max_length=200, description="The true class, or `background`")],
    predicted: Annotated[
        str, Query(min_length=1, max_length=200, description="The predicted class, or `background`")
    ],
    split: Literal["val", "test"] = "val",
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=predictions.MAX_PAGE)] = 12,
) -> predictions.PredictionPage:
    """The images behind one cell of the job's confusion matrix (what clicking the cell on the job
    page lists): objects of class `true` predicted as `predicted`; `predicted=background` lists
    the missed objects of `true`, `true=background` the false detections of `predicted`. Each
    image comes with the job's boxes judged (tp / fp / missed) and a short-lived thumbnail URL."""
    return predictions.confusion_cell(
        actor,
        project_id=project_id,
        job_id=job_id,
        predicted=predicted,
        true=true,
        split=split,
        offset=offset,
        limit=limit,
    )


@router.post(JOB + "/export")
def export(
    project_id: PathId, job_id: PathId, actor: CurrentActor, body: ExportRequest | None = None
) -> dict[str, Any]:
    """Export the job's best checkpoint (ONNX, TorchScript) to its exports/ folder, with parity checks."""
    formats = (body or ExportRequest()).formats
    return models.export(actor, project_id=project_id, job_id=job_id, formats=formats)


@router.post(JOB + "/predict")
async def predict(
    project_id: PathId,
    job_id: PathId,
    actor: CurrentActor,
    image: Annotated[UploadFile, File(description="A PNG/JPEG/WebP/BMP image (up to the API's body limit)")],
) -> dict[str, Any]:
    """Run the job's model on one image: boxes/labels/scores (detect, segment) or class probabilities."""
    data = await image.read(model_ops.MAX_IMAGE_BYTES + 1)
    return await models.predict(
        actor, project_id=project_id, job_id=job_id, image=data, filename=image.filename or ""
    )


@router.get("/projects/{project_id}/runs")
def runs(
    project_id: PathId,
    actor: CurrentActor,
    q: Annotated[str, Query(max_length=500, description=QUERY_HELP)] = "",
    state: Annotated[list[str] | None, Query(description="Only runs in these states")] = None,
    sort: Annotated[str, Query(max_length=130, description=SORT_HELP)] = "newest",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """One page of the project's runs, filtered, sorted and paged in the database, and how many match."""
    found, total = experiments.runs(
        actor, project_id=project_id, search=q, states=state, offset=offset, limit=limit, sort=sort
    )
    return {"total": total, "items": found}


@router.put(JOB + "/tags")
def set_tags(project_id: PathId, job_id: PathId, body: RunTags, actor: CurrentActor) -> RunTags:
    """Replace a run's tags (find them again with `tag:<name>` in the run filter)."""
    return RunTags(tags=experiments.set_run_tags(actor, project_id=project_id, job_id=job_id, tags=body.tags))


@router.get("/projects/{project_id}/compare")
def compare(
    project_id: PathId,
    actor: CurrentActor,
    ids: Annotated[str, Query(description="Comma-separated job ids", max_length=6000)] = "",
) -> dict[str, Any]:
    """Chosen runs with all their per-epoch metrics, final metrics and hyperparameter differences."""
    found = experiments.compare(actor, project_id=project_id, job_ids=_ids(ids))
    return {
        "runs": [
            {**r, "created_at": r["created_at"].isoformat() if r["created_at"] else None} for r in found.runs
        ],
        "curves": {str(k): v for k, v in found.curves.items()},
        "final": {str(k): v for k, v in final_metrics(found.curves).items()},
        "hyperparameters": hyperparameter_rows(found.runs),
    }


def _ids(ids: str) -> list[int]:
    try:
        return [int(part) for part in ids.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidInput("ids: comma-separated whole numbers") from exc


@router.get("/projects/{project_id}/compare.csv", response_class=PlainTextResponse)
def compare_csv(
    project_id: PathId,
    actor: CurrentActor,
    ids: Annotated[str, Query(description="Comma-separated job ids", max_length=6000)] = "",
) -> PlainTextResponse:
    """Every epoch of the chosen runs with every metric (the compare chart shows them downsampled)."""
    body = experiments.curves_csv(actor, project_id=project_id, job_ids=_ids(ids))
    headers = {"Content-Disposition": f'attachment; filename="project-{project_id}-runs.csv"'}
    return PlainTextResponse(body, media_type="text/csv", headers=headers)


@router.post("/projects/{project_id}/comparisons", status_code=201)
def save_comparison(
    project_id: PathId, body: SavedComparisonCreate, actor: CurrentActor
) -> SavedComparisonPublic:
    """Save a named selection of runs and its view; open it at /projects/{p}/compare?view={id}."""
    return experiments.save_comparison(actor, project_id=project_id, request=body)


@router.get("/projects/{project_id}/comparisons")
def list_comparisons(project_id: PathId, actor: CurrentActor) -> list[SavedComparisonPublic]:
    return experiments.list_comparisons(actor, project_id=project_id)


@router.get("/projects/{project_id}/comparisons/{comparison_id}")
def get_comparison(project_id: PathId, comparison_id: PathId, actor: CurrentActor) -> SavedComparisonPublic:
    return experiments.get_comparison(actor, project_id=project_id, comparison_id=comparison_id)


@router.get("/analytics")
def analytics(
    actor: CurrentActor,
    group_by: Annotated[str, Query(pattern="^(project|user)$")] = "project",
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> dict[str, Any]:
    """Jobs per day, success rate, compute hours (CPU vs GPU) and queue wait, per project or user."""
    usage, _admin = experiments.analytics(actor, group_by=group_by, days=days)
    return asdict(usage)
