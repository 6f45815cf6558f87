"""Batch inference: a model run over a whole dataset version or an uploaded zip of images.

A batch run is a job (`Job.kind == "batch_inference"`, protocol v1.5): it waits in the same
queue, is dispatched, reported, cancelled and retried like training, in the trainer's isolation.
This module decides what such a job holds and checks an uploaded zip before anything is stored;
the trainer (`trainer_runner/batch.py`) writes one JSON line and one CSV row per image, a summary
and a gallery, which `results` reads back.

Which model: `resolve_model_ref` turns `jobs/<id>` (a training job's best checkpoint) or
`models/<name>@<alias>` (a registry alias) into the weights' s3:// URI.

Errors: InvalidInput (a bad zip, an unknown ref, a bad threshold), NotFound, Conflict (the
model has no weights yet).
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from sqlmodel import Session

from services.domain import datasets, jobs, model_ops, registry
from services.domain.models import Job, JobState, User, id_of
from services.errors import Conflict, InvalidInput
from services.infra import storage
from services.infra.signing import new_secret

KIND = "batch_inference"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MAX_ZIP_BYTES = 500 * 1024 * 1024
MAX_ZIP_IMAGES = 100_000
_JOB_REF = re.compile(r"^jobs/(\d+)$")
RESULT_KEYS = ("predictions_jsonl", "predictions_csv", "inference_summary")


@dataclass(frozen=True)
class ResolvedModel:
    """Weights to run, what they are, and the training job they came from (over a zip, the
    batch job's lineage is that job's dataset version; None for uploaded weights)."""

    uri: str
    job: Job | None
    framework: str
    task: str
    architecture: str

    @property
    def target(self) -> str:
        return f"job:{self.job.id}" if self.job is not None else f"weights:{self.uri.rsplit('/', 1)[-1]}"


def resolve_model_ref(session: Session, *, project_id: int, ref: str) -> ResolvedModel:
    """`jobs/<id>`, `models/<name>@<alias>` or `models/<name>/<version>` -> the weights' s3:// URI
    within the project (`models/...` through the model registry)."""
    ref = ref.strip()
    if (match := _JOB_REF.match(ref)) is not None:
        job = jobs.get_job(session, project_id=project_id, job_id=int(match.group(1)))
        if job.kind != "train":
            raise InvalidInput(f"model: {ref} is a {job.kind} job, not a trained model")
        uri = model_ops.model_uri(job)
        if uri is None:
            raise Conflict(f"model: job {job.id} has saved no checkpoint yet")
        return ResolvedModel(uri=uri, job=job, framework=job.framework, task=job.task, architecture=job.model)
    if ref.startswith("models/"):
        version = registry.resolve(session, project_id=project_id, ref=ref)
        source = None
        if version.job_id is not None:
            source = jobs.get_job(session, project_id=project_id, job_id=version.job_id)
        return ResolvedModel(
            uri=version.weights_uri,
            job=source,
            framework=version.framework,
            task=version.task,
            architecture=version.architecture,
        )
    raise InvalidInput(f"model: {ref!r} is not a model reference; use jobs/<id> or models/<name>@<alias>")


def check_zip(data: bytes, filename: str) -> int:
    """How many images the zip holds; InvalidInput naming what to fix otherwise. Nothing is stored."""
    if not filename.lower().endswith(".zip"):
        raise InvalidInput(f"images: upload a .zip of images (got {filename!r})")
    if not data or len(data) > MAX_ZIP_BYTES:
        raise InvalidInput(f"images: the zip must be 1 byte to {MAX_ZIP_BYTES // 1024**2} MB")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
            broken = zf.testzip()
    except zipfile.BadZipFile as exc:
        raise InvalidInput(
            f"images: {filename} is not a zip file (or is damaged): zip the images again"
        ) from exc
    if broken is not None:
        raise InvalidInput(f"images: {filename} is damaged: {broken} fails its checksum")
    for name in names:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise InvalidInput(f"images: unsafe path in the zip: {name!r}")
    count = sum(
        1 for n in names if n.lower().endswith(IMAGE_SUFFIXES) and "__MACOSX" not in PurePosixPath(n).parts
    )
    if count == 0:
        raise InvalidInput(f"images: {filename} holds no images; use {', '.join(IMAGE_SUFFIXES)} files")
    if count > MAX_ZIP_IMAGES:
        raise InvalidInput(f"images: {count} images; at most {MAX_ZIP_IMAGES} per run")
    return count


def new_batch_job(
    session: Session,
    *,
    project_id: int,
    user: User,
    model: ResolvedModel,
    ref: str,
    dataset_version_id: int | None = None,
    images_uri: str | None = None,
    conf: float = 0.25,
    name: str = "",
) -> Job:
    """A queued batch job, not yet added: over a dataset version, or over a zip already stored."""
    if not 0.0 <= conf <= 1.0:
        raise InvalidInput("conf: a confidence threshold from 0 to 1")
    if (dataset_version_id is None) == (images_uri is None):
        raise InvalidInput("images: choose a dataset version or upload a zip of images")
    lineage: int | None
    if dataset_version_id is not None:
        version = datasets.get_version(session, project_id=project_id, version_id=dataset_version_id)
        over = f"dataset v{version.version}"
        lineage = id_of(version)
    else:
        over = "uploaded images"
        # A zip is no dataset version: the run keeps the data its model learnt from, or none for
        # uploaded weights (their version in the registry says where they came from).
        lineage = model.job.dataset_version_id if model.job is not None else None
    inference: dict[str, Any] = {
        "model_uri": model.uri,
        "model_ref": ref,
        "source": "dataset" if images_uri is None else "zip",
        "conf": conf,
    }
    if images_uri is not None:
        inference["images_uri"] = images_uri
    return Job(
        project_id=project_id,
        dataset_version_id=lineage,
        created_by=id_of(user),
        name=(name.strip() or f"Batch inference: {ref} on {over}")[:120],
        framework=model.framework,
        task=model.task,
        model=model.architecture,
        hyperparameters={},
        kind=KIND,
        inference=inference,
        callback_secret=new_secret(),
    )


def zip_key(project_id: int) -> str:
    return storage.inference_key(project_id, f"batches/{uuid.uuid4().hex}.zip")


@dataclass
class BatchResults:
    """What the job page shows of a finished batch run."""

    state: str
    images_done: int | None = None
    images_total: int | None = None
    summary: dict[str, Any] | None = None
    gallery: list[dict[str, Any]] = field(default_factory=list)  # {"image": bytes, "caption"}
    downloads: dict[str, str] = field(default_factory=dict)  # artifact name -> presigned URL


def results(job: Job, *, gallery_limit: int = 8) -> BatchResults:
    """Progress while it runs; the summary, gallery and download links once it succeeded."""
    if job.kind != KIND:
        raise InvalidInput(f"Job {job.id} is not a batch inference job")
    found = BatchResults(
        state=JobState(job.state).value, images_done=job.current_epoch, images_total=job.total_epochs
    )
    summary_uri = job.artifacts.get("inference_summary")
    if not summary_uri:
        return found
    try:
        found.summary = json.loads(storage.get_bytes(summary_uri))
    except Exception:  # noqa: BLE001 - shown as "no summary", the downloads still work
        found.summary = None
    for item in (found.summary or {}).get("gallery", [])[:gallery_limit]:
        uri = str(item.get("drawn_uri") or "")
        if not uri:
            continue
        top = item.get("predictions") or []
        caption = item.get("image", "")
        if top:
            caption += f": {top[0].get('class_name')} {float(top[0].get('score', 0)):.2f}"
        found.gallery.append({"image": model_ops.read_image(job, uri), "caption": caption})
    for name in RESULT_KEYS:
        stored = job.artifacts.get(name)
        if stored:
            _bucket, key = storage.parse_uri(stored)
            found.downloads[name] = storage.presigned_get(stored, filename=key.rsplit("/", 1)[-1])
    return found
