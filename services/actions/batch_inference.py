"""Batch inference as users start and read it: a queued job over a dataset version or a zip.

Starting one needs `job.create` (it takes a place in the queue and the trainer's time, like
training) and is audited as `batch.create`; its results are read like a job's artifacts.
Cancel and retry are the jobs' own actions (services.actions.jobs): a batch run is a job.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from services.actions.core import Actor, Audit, operation
from services.actions.jobs import Submitted
from services.domain import batch_inference, quotas
from services.domain.models import Job
from services.domain.permissions import Action
from services.domain.schemas import JobPublic
from services.errors import NotFound
from services.infra import storage
from services.infra.queue import enqueue_dispatch


@dataclass(frozen=True)
class BatchRequest:
    """What a user asks for: a model reference and images (a dataset version, or a zip's bytes)."""

    model: str  # jobs/<id> or models/<name>@<alias>
    dataset_version_id: int | None = None
    zip_data: bytes | None = field(default=None, repr=False)
    filename: str = ""
    conf: float = 0.25
    name: str = ""


def _create(actor: Actor, project_id: int, request: BatchRequest, zip_key: str) -> JobPublic:
    with operation(actor, "batch.create", target=f"project:{project_id}") as op:
        op.authorize(Action.job_create, project_id=project_id)
        model = batch_inference.resolve_model_ref(op.session, project_id=project_id, ref=request.model)
        uploaded = request.zip_data is not None
        if request.zip_data is not None:
            count = batch_inference.check_zip(request.zip_data, request.filename)
            op.detail = f"{count} images from {request.filename[:80]}"
        job = batch_inference.new_batch_job(
            op.session,
            project_id=project_id,
            user=op.me,
            model=model,
            ref=request.model,
            dataset_version_id=request.dataset_version_id,
            images_uri=storage.uri(zip_key) if uploaded else None,
            conf=request.conf,
            name=request.name,
        )
        quotas.check_room_to_queue(op.session, project_id=project_id)
        if request.zip_data is not None:  # stored only once everything else was accepted
            storage.put_bytes(zip_key, request.zip_data, "application/zip")
        op.session.add(job)
        op.session.flush()
        op.target = f"job:{job.id}"
        return JobPublic.of(job)


async def create(actor: Actor, *, project_id: int, request: BatchRequest) -> Submitted:
    """Queue a batch run; the dispatcher hands it to the trainer like a training job."""
    zip_key = batch_inference.zip_key(project_id)
    try:
        job = await asyncio.to_thread(_create, actor, project_id, request, zip_key)
    except Exception:
        if request.zip_data is not None:  # a refused or failed run leaves no orphan upload
            await asyncio.to_thread(storage.delete_prefix, zip_key)
        raise
    return Submitted(job=job, queued=await enqueue_dispatch(job.id, job.attempt))


def _batch_job(actor: Actor, project_id: int | None, job_id: int) -> Job:
    with operation(actor, "batch.results", target=f"job:{job_id}", record=Audit.refusals) as op:
        job = op.session.get(Job, job_id)
        if job is None or (project_id is not None and job.project_id != project_id):
            raise NotFound(f"Job {job_id} does not exist")
        try:
            op.authorize(Action.job_read, project_id=job.project_id)
        except NotFound as exc:
            raise NotFound(f"Job {job_id} does not exist", reason=exc.reason) from exc
        op.session.expunge(job)
        return job


def results(
    actor: Actor, *, job_id: int, project_id: int | None = None, gallery_limit: int = 8
) -> batch_inference.BatchResults:
    """Progress, summary (counts per class, score histogram), gallery and download links."""
    job = _batch_job(actor, project_id, job_id)
    return batch_inference.results(job, gallery_limit=gallery_limit)


def results_doc(actor: Actor, *, job_id: int, project_id: int | None = None) -> dict[str, Any]:
    """`results` for the REST API: gallery images as short-lived URLs instead of bytes."""
    job = _batch_job(actor, project_id, job_id)
    found = batch_inference.results(job, gallery_limit=0)
    gallery = [
        {**item, "image_url": storage.presigned_get(item["drawn_uri"])}
        for item in ((found.summary or {}).get("gallery") or [])
        if item.get("drawn_uri")
    ]
    return {
        "job_id": job_id,
        "state": found.state,
        "images_done": found.images_done,
        "images_total": found.images_total,
        "summary": found.summary,
        "gallery": gallery,
        "downloads": found.downloads,
    }
