"""Trained models: artifacts of a job, its validation documents, export and inference.

The trainer does the work over HTTP (POST /export, POST /predict, docs/trainer-protocol.md);
this module decides which s3:// URIs cross and what is kept (exports land in the job's
`artifacts`); who may ask is decided by the application layer (services.actions.models). Slow
calls are split from database work so no session is held while the trainer computes:
`prepare_*` (session) -> `run_*` (HTTP) -> `record_*` (session).

Errors: InvalidInput (bad format / image), Conflict (the job has no model yet),
TrainerUnavailable (trainer unreachable or refusing).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlmodel import Session, col, select

from services.domain import jobs
from services.domain.catalog import TrainerUnavailable
from services.domain.models import Job, JobEvent, JobState
from services.errors import Conflict, InvalidInput
from services.infra import storage
from services.infra.trainer_client import TrainerBusy, TrainerClient, TrainerRejected

# The trainer checks each against its plugin; CoreML is absent: its models run only on macOS,
# so no parity check could pass here.
EXPORT_FORMATS = ("onnx", "torchscript", "openvino", "openvino_fp16", "ncnn", "ncnn_fp16")
IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "bmp": "image/bmp",
}
MAX_IMAGE_BYTES = 20 * 1024 * 1024
_EPOCH_DIR = re.compile(r"artifacts/epoch-(\d{3,})/")


def _prefix(job: Job) -> str:
    assert job.id is not None, "only stored jobs have files"
    return storage.job_prefix(job.project_id, job.id)


def model_uri(job: Job) -> str | None:
    """The checkpoint to export or predict with: best, else last; None before the job saved any."""
    for name in ("best_checkpoint", "last_checkpoint"):
        if job.artifacts.get(name):
            return job.artifacts[name]
    prefix = _prefix(job) + "checkpoints/"
    for name in ("best.pt", "last.pt"):
        uri = storage.uri(prefix + name)
        if storage.exists(uri):
            return uri
    return None


# --- artifacts ----------------------------------------------------------------------------------


def artifact_rows(job: Job) -> list[dict[str, Any]]:
    """Every object under the job's prefix: {"key" (relative), "uri", "size", "kind"}."""
    prefix = _prefix(job)
    rows = []
    for key, size in storage.list_objects(prefix):
        relative = key[len(prefix) :]
        kind = relative.split("/", 1)[0] if "/" in relative else "file"
        rows.append({"key": relative, "uri": storage.uri(key), "size": size, "kind": kind})
    return sorted(rows, key=lambda r: (r["kind"] != "checkpoints", r["kind"] != "exports", r["key"]))


def download_url(job: Job, key: str) -> str:
    """A short-lived presigned URL for one object of the job (relative `key`, no escaping the prefix)."""
    if ".." in key.split("/") or key.startswith("/"):
        raise InvalidInput("key: must be a path inside the job's folder")
    full = storage.uri(_prefix(job) + key)
    return storage.presigned_get(full, filename=key.rsplit("/", 1)[-1])


# --- validation documents -----------------------------------------------------------------------


@dataclass
class ValidationDocs:
    epoch: int | None = None
    per_class: dict[str, Any] | None = None
    confusion_matrix: dict[str, Any] | None = None
    pr_curve: dict[str, Any] | None = None
    predictions: list[dict[str, Any]] | None = None


def _read_json(uri: str | None) -> Any:
    if not uri:
        return None
    try:
        return json.loads(storage.get_bytes(uri))
    except Exception:  # noqa: BLE001 - a missing/garbled document is shown as "not available"
        return None


def latest_validation_uris(session: Session, job: Job) -> tuple[int | None, dict[str, str]]:
    """(epoch, {"per_class"|"confusion_matrix"|"pr_curve": uri}) of the newest epoch that has them.

    From the epoch callbacks' `validation` field; else by listing `artifacts/epoch-NNN/`.
    """
    events = session.exec(
        select(JobEvent.payload)
        .where(JobEvent.job_id == job.id, JobEvent.type == "epoch")
        .order_by(col(JobEvent.id).desc())
    ).all()
    for payload in events:
        validation = (payload or {}).get("validation") or {}
        uris = {
            name: str(validation[f"{name}_uri"])
            for name in ("per_class", "confusion_matrix", "pr_curve")
            if validation.get(f"{name}_uri")
        }
        if uris:
            return payload.get("epoch"), uris
    prefix = _prefix(job) + "artifacts/"
    by_epoch: dict[int, dict[str, str]] = {}
    for key in storage.list_keys(prefix + "epoch-"):
        match = _EPOCH_DIR.search(key)
        name = key.rsplit("/", 1)[-1].removesuffix(".json")
        if match and name in {"per_class", "confusion_matrix", "pr_curve"}:
            by_epoch.setdefault(int(match.group(1)), {})[name] = storage.uri(key)
    if not by_epoch:
        return None, {}
    epoch = max(by_epoch)
    return epoch, by_epoch[epoch]


def validation_docs(session: Session, job: Job) -> ValidationDocs:
    epoch, uris = latest_validation_uris(session, job)
    docs = ValidationDocs(
        epoch=epoch,
        per_class=_read_json(uris.get("per_class")),
        confusion_matrix=_read_json(uris.get("confusion_matrix")),
        pr_curve=_read_json(uris.get("pr_curve")),
    )
    predictions_uri = job.artifacts.get("predictions") or storage.uri(
        _prefix(job) + "artifacts/predictions/predictions.json"
    )
    if not predictions_uri.endswith(".json"):
        predictions_uri = predictions_uri.rstrip("/") + "/predictions.json"
    found = _read_json(predictions_uri)
    if isinstance(found, dict):
        found = found.get("predictions") or found.get("images")
    docs.predictions = found if isinstance(found, list) else None
    return docs


def read_image(job: Job, uri: str) -> bytes:
    """Bytes of an image stored under the job's prefix (prediction drawings)."""
    _bucket, key = storage.parse_uri(uri)
    if not key.startswith(_prefix(job)) or ".." in key:
        raise InvalidInput("uri: not an object of this job")
    return storage.get_bytes(uri)


# --- export -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportPlan:
    project_id: int
    job_id: int
    model_uri: str
    output_uri: str
    formats: tuple[str, ...]


def prepare_export(job: Job, formats: list[str]) -> ExportPlan:
    assert job.id is not None
    job_id = job.id
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if not formats or bad:
        raise InvalidInput(f"formats: choose from {list(EXPORT_FORMATS)}; got {formats}")
    if JobState(job.state) != JobState.succeeded:
        raise Conflict(f"Job {job_id} is {JobState(job.state).value}; export needs a succeeded job")
    uri = model_uri(job)
    if uri is None:
        raise Conflict(f"Job {job_id} saved no checkpoint to export")
    output = storage.uri(_prefix(job) + "exports/")
    return ExportPlan(job.project_id, job_id, uri, output, tuple(dict.fromkeys(formats)))


def _trainer_call(call: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
    try:
        return call()
    except TrainerRejected as exc:
        raise InvalidInput(f"The trainer refused the {what}: {exc}") from exc
    except TrainerBusy as exc:
        raise TrainerUnavailable(
            f"The trainer is busy; try the {what} again in {exc.retry_after_s:.0f} s"
        ) from exc
    except httpx.HTTPError as exc:
        raise TrainerUnavailable(
            f"The trainer could not be reached for the {what} ({type(exc).__name__}); try again shortly"
        ) from exc


def run_export(plan: ExportPlan) -> dict[str, Any]:
    client = TrainerClient.from_settings()
    return _trainer_call(
        lambda: client.export_sync(
            model_uri=plan.model_uri, output_uri=plan.output_uri, formats=list(plan.formats)
        ),
        "export",
    )


def record_export(session: Session, *, plan: ExportPlan, result: dict[str, Any]) -> dict[str, str]:
    """Store each exported file's URI in the job's artifacts as `export_<format>`."""
    job = jobs.get_job(session, project_id=plan.project_id, job_id=plan.job_id)
    added = {
        f"export_{item['format']}": str(item["uri"])
        for item in result.get("exports") or []
        if item.get("format") and item.get("uri")
    }
    job.artifacts = {**job.artifacts, **added}
    session.add(job)
    session.flush()
    return added


# --- inference ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictPlan:
    model_uri: str
    image_uri: str


def prepare_predict(job: Job, image: bytes, filename: str) -> PredictPlan:
    """Check the image, then store it under the project's `inference/` prefix."""
    uri = model_uri(job)
    if uri is None:
        raise Conflict(f"Job {job.id} has no checkpoint yet: wait until it saves one")
    return prepare_predict_with(job.project_id, uri, image, filename)


def prepare_predict_with(project_id: int, uri: str, image: bytes, filename: str) -> PredictPlan:
    """`prepare_predict` for weights already resolved (a `jobs/<id>` or `models/<name>@<alias>` ref)."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in IMAGE_TYPES:
        raise InvalidInput(f"image: use one of {sorted(IMAGE_TYPES)} (got {filename!r})")
    if not image or len(image) > MAX_IMAGE_BYTES:
        raise InvalidInput(f"image: must be 1 byte to {MAX_IMAGE_BYTES // 1024**2} MB")
    key = storage.inference_key(project_id, f"{uuid.uuid4().hex}.{extension}")
    return PredictPlan(model_uri=uri, image_uri=storage.put_bytes(key, image, IMAGE_TYPES[extension]))


def run_predict(plan: PredictPlan) -> dict[str, Any]:
    client = TrainerClient.from_settings()
    return _trainer_call(
        lambda: client.predict_sync(model_uri=plan.model_uri, image_uri=plan.image_uri), "inference"
    )
