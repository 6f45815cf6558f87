"""A job's model as users act on it: artifacts, validation results, export and inference.

The trainer does the slow work over HTTP; no session is held while it computes. Export and
inference are audited (`model.export`, `model.predict`); reading artifacts only when refused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from services.actions.core import Actor, Audit, Operation, operation, record_outcome
from services.domain import model_ops, registry
from services.domain.models import Job
from services.domain.permissions import Action
from services.errors import NotFound

MAX_GALLERY = 8


def _job(op: Operation, *, project_id: int | None, job_id: int, action: Action = Action.job_read) -> Job:
    """The job, after checking `action` in its project. Outsiders get NotFound for the job."""
    job = op.session.get(Job, job_id)
    if job is None or (project_id is not None and job.project_id != project_id):
        raise NotFound(f"Job {job_id} does not exist")
    op.target = f"job:{job_id}"
    try:
        op.authorize(Action.job_read, project_id=job.project_id)
    except NotFound as exc:
        raise NotFound(f"Job {job_id} does not exist", reason=exc.reason) from exc
    if action is not Action.job_read:
        op.authorize(action, project_id=job.project_id)
    return job


def artifacts(actor: Actor, *, project_id: int, job_id: int) -> list[dict[str, Any]]:
    """Every file the job left in object storage, each with a short-lived download URL."""
    with operation(actor, "job.artifacts", record=Audit.refusals) as op:
        job = _job(op, project_id=project_id, job_id=job_id)
    rows = model_ops.artifact_rows(job)
    return [{**row, "download_url": model_ops.download_url(job, row["key"])} for row in rows]


def validation(actor: Actor, *, project_id: int, job_id: int) -> model_ops.ValidationDocs:
    """The newest epoch's per-class metrics, confusion matrix, PR curve, and the prediction samples."""
    with operation(actor, "job.validation", record=Audit.refusals) as op:
        return model_ops.validation_docs(op.session, _job(op, project_id=project_id, job_id=job_id))


@dataclass
class JobExtras:
    """The job page's validation tab, prediction gallery and artifact list, in one read."""

    docs: model_ops.ValidationDocs
    gallery: list[dict[str, Any]] = field(default_factory=list)  # {"image": bytes, "caption"}
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # artifact rows + "download_url"
    mlflow_run_id: str | None = None
    kind: str = "train"  # "batch_inference": the page shows services.actions.batch_inference.results


def _extras(session: Session, job: Job) -> JobExtras:
    docs = model_ops.validation_docs(session, job)
    rows = [
        {**r, "download_url": model_ops.download_url(job, r["key"])} for r in model_ops.artifact_rows(job)
    ]
    gallery = []
    for item in (docs.predictions or [])[:MAX_GALLERY]:
        uri = str(item.get("drawn_uri") or "")
        if not uri:
            continue
        found = item.get("boxes") or item.get("probabilities") or []
        name = item.get("image", uri.rsplit("/", 1)[-1])
        gallery.append(
            {
                "image": model_ops.read_image(job, uri),
                "caption": f"{name}: {len(found)} prediction{'' if len(found) == 1 else 's'}",
            }
        )
    return JobExtras(
        docs=docs, gallery=gallery, artifacts=rows, mlflow_run_id=job.mlflow_run_id, kind=job.kind
    )


def job_extras(actor: Actor, *, job_id: int) -> JobExtras:
    with operation(actor, "job.validation", record=Audit.refusals) as op:
        return _extras(op.session, _job(op, project_id=None, job_id=job_id))


def _prepare_export(
    actor: Actor, project_id: int | None, job_id: int, formats: list[str]
) -> model_ops.ExportPlan:
    with operation(actor, "model.export", record=Audit.refusals) as op:
        job = _job(op, project_id=project_id, job_id=job_id, action=Action.model_export)
        return model_ops.prepare_export(job, formats)


def _record_export(actor: Actor, plan: model_ops.ExportPlan, result: dict[str, Any]) -> None:
    with operation(actor, "model.export", target=f"job:{plan.job_id}", project_id=plan.project_id) as op:
        added = model_ops.record_export(op.session, plan=plan, result=result)
        # A version registered from this job holds the same weights: the exports show on it too.
        for version in registry.versions_of_job(op.session, job_id=plan.job_id):
            for item in result.get("exports") or []:
                if item.get("format") and item.get("uri"):
                    registry.attach_export(
                        op.session,
                        version,
                        str(item["format"]),
                        str(item["uri"]),
                        dict(item.get("parity") or {}),
                    )
        op.detail = "formats: " + ", ".join(sorted(k.removeprefix("export_") for k in added))


def _failed_export(actor: Actor, plan: model_ops.ExportPlan, message: str) -> None:
    from services.domain import audit

    record_outcome(
        actor,
        "model.export",
        target=f"job:{plan.job_id}",
        project_id=plan.project_id,
        result=audit.FAILED,
        detail=message,
    )


def export(actor: Actor, *, job_id: int, formats: list[str], project_id: int | None = None) -> dict[str, Any]:
    """Export the job's best checkpoint to its exports/ folder, with the trainer's parity checks.

    Blocking (the trainer exports synchronously): call it from a thread in async code.
    """
    from services.errors import DomainError

    plan = _prepare_export(actor, project_id, job_id, formats)
    try:
        result = model_ops.run_export(plan)
    except DomainError as exc:
        _failed_export(actor, plan, exc.message)
        raise
    _record_export(actor, plan, result)
    return result


def _prepare_predict(
    actor: Actor, project_id: int | None, job_id: int, image: bytes, filename: str
) -> model_ops.PredictPlan:
    with operation(actor, "model.predict") as op:
        job = _job(op, project_id=project_id, job_id=job_id, action=Action.model_predict)
        op.detail = filename[:120]
        return model_ops.prepare_predict(job, image, filename)


async def predict(
    actor: Actor, *, job_id: int, image: bytes, filename: str, project_id: int | None = None
) -> dict[str, Any]:
    """Run the job's model on one image: boxes (detect, segment) or class probabilities (classify)."""
    plan = await asyncio.to_thread(_prepare_predict, actor, project_id, job_id, image, filename)
    result = await asyncio.to_thread(model_ops.run_predict, plan)
    return {**result, "image_uri": plan.image_uri}


def _prepare_predict_ref(
    actor: Actor, project_id: int, ref: str, image: bytes, filename: str
) -> model_ops.PredictPlan:
    from services.domain.batch_inference import resolve_model_ref

    with operation(actor, "model.predict", target=f"project:{project_id}") as op:
        op.authorize(Action.model_predict, project_id=project_id)
        model = resolve_model_ref(op.session, project_id=project_id, ref=ref)
        op.target = model.target
        op.detail = f"{ref[:80]} {filename[:80]}"
        return model_ops.prepare_predict_with(project_id, model.uri, image, filename)


async def predict_ref(
    actor: Actor, *, project_id: int, ref: str, image: bytes, filename: str
) -> dict[str, Any]:
    """The playground by reference: `jobs/<id>` or `models/<name>@<alias>` instead of a job id."""
    plan = await asyncio.to_thread(_prepare_predict_ref, actor, project_id, ref, image, filename)
    result = await asyncio.to_thread(model_ops.run_predict, plan)
    return {**result, "image_uri": plan.image_uri, "model_ref": ref}


def succeeded_jobs(actor: Actor, *, project_id: int) -> tuple[str, list[Any]]:
    """The models page: the viewer's role and the project's succeeded jobs (each has a model)."""
    from services.actions.jobs import job_list

    with operation(actor, "job.list", record=Audit.refusals) as op:
        role = op.authorize(Action.job_read, project_id=project_id)
    found = job_list(actor, project_id=project_id, states=["succeeded"])
    return role.value, [j for j in found if j.kind == "train"]  # a batch run has no model of its own
