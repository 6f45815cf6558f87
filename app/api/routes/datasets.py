"""Datasets: upload, versions, splits, class renames, statistics and the image gallery.

Each route parses the request, calls `services.actions.datasets` with the request's actor (which
authorizes, audits and commits) and shapes the answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from app.api.deps import CurrentActor, PathId
from services.actions import datasets as actions
from services.domain.datasets import DatasetRejected
from services.domain.datasets.schemas import (
    DatasetStats,
    DatasetVersionDetail,
    GalleryPage,
    RejectedUpload,
    RenameRequest,
    SplitRequest,
    UploadResult,
)
from services.domain.schemas import DatasetVersionPublic

router = APIRouter(prefix="/projects/{project_id}/datasets", tags=["datasets"])

CACHE_IMAGES = {"Cache-Control": "private, max-age=86400"}


@router.get("")
def list_datasets(project_id: PathId, actor: CurrentActor) -> list[DatasetVersionPublic]:
    return actions.list_datasets(actor, project_id=project_id).datasets


@router.post("", status_code=201, response_model=UploadResult, responses={422: {"model": RejectedUpload}})
def upload_dataset(
    project_id: PathId,
    actor: CurrentActor,
    file: Annotated[UploadFile, File(description="A .zip in YOLO, COCO or ImageFolder layout")],
    name: Annotated[str, Form(max_length=120)] = "",
) -> Any:
    """Starlette spools the upload to disk and boto3 sends it in parts, so memory stays flat.

    201: the new version and its report (warnings). 422: `detail` plus every problem as
    `problems: [{file, line, message}]`; nothing is stored.
    """
    try:
        return actions.upload_dataset(
            actor, project_id=project_id, fileobj=file.file, filename=file.filename or "", name=name
        )
    except DatasetRejected as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)


@router.get("/{dataset_id}/versions")
def list_versions(project_id: PathId, dataset_id: PathId, actor: CurrentActor) -> list[DatasetVersionDetail]:
    """Every version of the dataset, newest first."""
    return actions.list_versions(actor, project_id=project_id, dataset_id=dataset_id).versions


@router.post(
    "/{dataset_id}/versions",
    status_code=201,
    response_model=UploadResult,
    responses={422: {"model": RejectedUpload}},
)
def upload_version(
    project_id: PathId,
    dataset_id: PathId,
    actor: CurrentActor,
    file: Annotated[UploadFile, File(description="A .zip in YOLO, COCO or ImageFolder layout")],
) -> Any:
    """A new upload to an existing dataset becomes its next version; earlier versions stay as they are.

    Same checks and answers as the first upload: 201 with the version and its report, or 422
    with every problem and nothing stored.
    """
    try:
        return actions.upload_version(
            actor,
            project_id=project_id,
            dataset_id=dataset_id,
            fileobj=file.file,
            filename=file.filename or "",
        )
    except DatasetRejected as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)


@router.post("/{dataset_id}/rename-classes", status_code=201)
def rename_classes(
    project_id: PathId, dataset_id: PathId, body: RenameRequest, actor: CurrentActor
) -> DatasetVersionDetail:
    """A NEW version whose classes carry the new names (labels, images and split unchanged)."""
    return actions.rename_classes(
        actor, project_id=project_id, dataset_id=dataset_id, names=body.names, from_version=body.from_version
    )


@router.get("/{dataset_id}/versions/{version}")
def get_version(
    project_id: PathId, dataset_id: PathId, version: PathId, actor: CurrentActor
) -> DatasetVersionDetail:
    return actions.get_version(actor, project_id=project_id, dataset_id=dataset_id, version=version)


@router.get("/{dataset_id}/versions/{version}/report")
def get_report(project_id: PathId, dataset_id: PathId, version: PathId, actor: CurrentActor) -> Any:
    """The validation report of an uploaded version (counts and warnings); {} for split versions."""
    return actions.version_report(actor, project_id=project_id, dataset_id=dataset_id, version=version)


@router.post("/{dataset_id}/split", status_code=201)
def split_dataset(
    project_id: PathId, dataset_id: PathId, body: SplitRequest, actor: CurrentActor
) -> DatasetVersionDetail:
    """A NEW version with a train/val/test split (stratified, random or as uploaded)."""
    return actions.split(
        actor,
        project_id=project_id,
        dataset_id=dataset_id,
        ratios={"train": body.train, "val": body.val, "test": body.test},
        seed=body.seed,
        method=body.method,
        from_version=body.from_version,
    )


@router.get("/{dataset_id}/versions/{version}/stats")
def version_stats(
    project_id: PathId, dataset_id: PathId, version: PathId, actor: CurrentActor
) -> DatasetStats:
    """Counts per class per split, image sizes and objects per image, for charts."""
    found = actions.version_stats(actor, project_id=project_id, dataset_id=dataset_id, version=version)
    return DatasetStats(**found)


@router.get("/{dataset_id}/versions/{version}/images")
def gallery(
    request: Request,
    project_id: PathId,
    dataset_id: PathId,
    version: PathId,
    actor: CurrentActor,
    split: Annotated[str | None, Query(pattern="^(train|val|test)$")] = None,
    class_name: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 24,
) -> GalleryPage:
    """One page of images with thumbnails (rendered once, stored in S3), filtered by split/class."""
    page = actions.gallery(
        actor,
        project_id=project_id,
        dataset_id=dataset_id,
        version=version,
        split=split,
        class_name=class_name,
        offset=offset,
        limit=limit,
    ).page
    base = str(request.url.path)
    for item in page.data:
        item.image_url = f"{base}/{item.index}"
        item.thumbnail_url = f"{base}/{item.index}/thumbnail"
    return page


@router.get("/{dataset_id}/versions/{version}/images/{index}/thumbnail")
def thumbnail(
    project_id: PathId, dataset_id: PathId, version: PathId, index: PathId, actor: CurrentActor
) -> Response:
    data = actions.thumbnail(
        actor, project_id=project_id, dataset_id=dataset_id, version=version, index=index
    )
    return Response(data, media_type="image/jpeg", headers=CACHE_IMAGES)


@router.get("/{dataset_id}/versions/{version}/images/{index}")
def full_image(
    project_id: PathId, dataset_id: PathId, version: PathId, index: PathId, actor: CurrentActor
) -> StreamingResponse:
    """The full-size image, streamed out of the version's archive in S3."""
    image = actions.full_image(
        actor, project_id=project_id, dataset_id=dataset_id, version=version, index=index
    )
    return StreamingResponse(image.chunks, media_type=image.media_type, headers=CACHE_IMAGES)
