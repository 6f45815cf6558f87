"""Inference beyond one job's playground: batch runs (a queued job over a dataset version or a
zip of images) and single-image inference by model reference. Routes parse and shape; the
actions decide."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from app.api.deps import CurrentActor, PathId
from services.actions import batch_inference, models
from services.actions.batch_inference import BatchRequest
from services.domain import model_ops
from services.domain.batch_inference import MAX_ZIP_BYTES
from services.domain.schemas import BatchInferenceCreate, JobPublic
from services.errors import InvalidInput

router = APIRouter(tags=["inference"])
P = "/projects/{project_id}"
ModelRef = Annotated[
    str, Form(min_length=1, max_length=200, description="jobs/<id> or models/<name>@<alias>")
]


@router.post(P + "/batch-inference", status_code=201)
async def create_batch(project_id: PathId, body: BatchInferenceCreate, actor: CurrentActor) -> JobPublic:
    """Queue a batch run of a model over every image of a dataset version (all splits)."""
    request = BatchRequest(
        model=body.model, dataset_version_id=body.dataset_version_id, conf=body.conf, name=body.name
    )
    return (await batch_inference.create(actor, project_id=project_id, request=request)).job


@router.post(P + "/batch-inference/upload", status_code=201)
async def create_batch_from_zip(
    project_id: PathId,
    actor: CurrentActor,
    model: ModelRef,
    images: Annotated[UploadFile, File(description="A .zip of PNG/JPEG/WebP/BMP/TIFF images")],
    conf: Annotated[float, Form(ge=0.0, le=1.0)] = 0.25,
    name: Annotated[str, Form(max_length=120)] = "",
) -> JobPublic:
    """Queue a batch run of any model (uploaded weights too) over an uploaded zip of images; the zip
    is checked before it is stored."""
    data = await images.read(MAX_ZIP_BYTES + 1)
    request = BatchRequest(model=model, zip_data=data, filename=images.filename or "", conf=conf, name=name)
    return (await batch_inference.create(actor, project_id=project_id, request=request)).job


@router.get(P + "/jobs/{job_id}/batch-results")
def batch_results(project_id: PathId, job_id: PathId, actor: CurrentActor) -> dict[str, Any]:
    """Progress, then the summary (counts per class, score histogram), gallery and downloads."""
    return batch_inference.results_doc(actor, project_id=project_id, job_id=job_id)


@router.post(P + "/predict")
async def predict_by_ref(
    project_id: PathId,
    actor: CurrentActor,
    model: ModelRef,
    image: Annotated[UploadFile, File(description="A PNG/JPEG/WebP/BMP image")],
) -> dict[str, Any]:
    """One image through a model named by reference (`jobs/<id>`, `models/<name>@<alias>`)."""
    data = await image.read(model_ops.MAX_IMAGE_BYTES + 1)
    if not data:
        raise InvalidInput("image: the file is empty")
    return await models.predict_ref(
        actor, project_id=project_id, ref=model, image=data, filename=image.filename or ""
    )
