from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from app.api.deps import CurrentUser, PathId, SessionDep
from services.actions import views
from services.domain import datasets
from services.domain.datasets import stats, thumbnails
from services.domain.datasets.schemas import (
    DatasetStats,
    DatasetVersionDetail,
    GalleryPage,
    RejectedUpload,
    RenameRequest,
    ReportPublic,
    SplitRequest,
    UploadResult,
)
from services.domain.models import DatasetVersion
from services.domain.permissions import Action, authorize
from services.domain.schemas import DatasetVersionPublic

router = APIRouter(prefix="/projects/{project_id}/datasets", tags=["datasets"])


@router.get("")
def list_datasets(project_id: PathId, session: SessionDep, user: CurrentUser) -> list[DatasetVersionPublic]:
    authorize(session, user=user, project_id=project_id, action=Action.project_read)
    return views.project_datasets(session, project_id=project_id)


@router.post("", status_code=201, response_model=UploadResult, responses={422: {"model": RejectedUpload}})
def upload_dataset(
    project_id: PathId,
    session: SessionDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="A .zip in YOLO, COCO or ImageFolder layout")],
    name: Annotated[str, Form(max_length=120)] = "",
) -> Any:
    """Starlette spools the upload to disk and boto3 sends it in parts, so memory stays flat.

    201: the new version and its report (warnings). 422: `detail` plus every problem as
    `problems: [{file, line, message}]`; nothing is stored.
    """
    authorize(session, user=user, project_id=project_id, action=Action.dataset_write)
    filename = file.filename or "upload.zip"
    dataset_name = name or filename.rsplit(".", 1)[0]
    try:
        version, report = datasets.ingest_zip(
            session,
            project_id=project_id,
            user_id=user.id,
            name=dataset_name,
            fileobj=file.file,
            filename=filename,
        )
    except datasets.DatasetRejected as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)
    detail = DatasetVersionDetail.of(version, dataset_name)
    return UploadResult(**detail.model_dump(), report=ReportPublic.of(report))


def _version(
    session: SessionDep, user: CurrentUser, project_id: PathId, dataset_id: PathId, version: PathId
) -> DatasetVersion:
    authorize(session, user=user, project_id=project_id, action=Action.project_read)
    return datasets.get_dataset_version(
        session, project_id=project_id, dataset_id=dataset_id, version=version
    )


@router.get("/{dataset_id}/versions")
def list_versions(
    project_id: PathId, dataset_id: PathId, session: SessionDep, user: CurrentUser
) -> list[DatasetVersionDetail]:
    """Every version of the dataset, newest first."""
    authorize(session, user=user, project_id=project_id, action=Action.project_read)
    dataset = datasets.get_dataset(session, project_id=project_id, dataset_id=dataset_id)
    rows = datasets.list_versions(session, project_id=project_id, dataset_id=dataset_id)
    return [DatasetVersionDetail.of(v, dataset.name) for v in rows]


@router.post(
    "/{dataset_id}/versions",
    status_code=201,
    response_model=UploadResult,
    responses={422: {"model": RejectedUpload}},
)
def upload_version(
    project_id: PathId,
    dataset_id: PathId,
    session: SessionDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="A .zip in YOLO, COCO or ImageFolder layout")],
) -> Any:
    """A new upload to an existing dataset becomes its next version; earlier versions stay as they are.

    Same checks and answers as the first upload: 201 with the version and its report, or 422
    with every problem and nothing stored.
    """
    authorize(
        session, user=user, project_id=project_id, action=Action.dataset_write, target=f"dataset:{dataset_id}"
    )
    dataset = datasets.get_dataset(session, project_id=project_id, dataset_id=dataset_id)
    try:
        version, report = datasets.ingest_new_version(
            session,
            project_id=project_id,
            dataset_id=dataset_id,
            fileobj=file.file,
            filename=file.filename or "upload.zip",
        )
    except datasets.DatasetRejected as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)
    detail = DatasetVersionDetail.of(version, dataset.name)
    return UploadResult(**detail.model_dump(), report=ReportPublic.of(report))


@router.post("/{dataset_id}/rename-classes", status_code=201)
def rename_classes(
    project_id: PathId, dataset_id: PathId, body: RenameRequest, session: SessionDep, user: CurrentUser
) -> DatasetVersionDetail:
    """A NEW version whose classes carry the new names (labels, images and split unchanged)."""
    authorize(
        session, user=user, project_id=project_id, action=Action.dataset_write, target=f"dataset:{dataset_id}"
    )
    dataset = datasets.get_dataset(session, project_id=project_id, dataset_id=dataset_id)
    version = datasets.rename_classes(
        session,
        project_id=project_id,
        dataset_id=dataset_id,
        names=body.names,
        from_version=body.from_version,
    )
    return DatasetVersionDetail.of(version, dataset.name)


@router.get("/{dataset_id}/versions/{version}")
def get_version(
    project_id: PathId, dataset_id: PathId, version: PathId, session: SessionDep, user: CurrentUser
) -> DatasetVersionDetail:
    row = _version(session, user, project_id, dataset_id, version)
    return DatasetVersionDetail.of(
        row, datasets.get_dataset(session, project_id=project_id, dataset_id=dataset_id).name
    )


@router.get("/{dataset_id}/versions/{version}/report")
def get_report(
    project_id: PathId,
    dataset_id: PathId,
    version: PathId,
    session: SessionDep,
    user: CurrentUser,
) -> Any:
    """The validation report of an uploaded version (counts and warnings); {} for split versions."""
    row = _version(session, user, project_id, dataset_id, version)
    return datasets.queries.load_json(row.uri, datasets.queries.REPORT) or {}


@router.post("/{dataset_id}/split", status_code=201)
def split_dataset(
    project_id: PathId, dataset_id: PathId, body: SplitRequest, session: SessionDep, user: CurrentUser
) -> DatasetVersionDetail:
    """A NEW version with a train/val/test split (stratified, random or as uploaded)."""
    authorize(session, user=user, project_id=project_id, action=Action.dataset_write)
    dataset = datasets.get_dataset(session, project_id=project_id, dataset_id=dataset_id)
    version = datasets.split_version(
        session,
        project_id=project_id,
        dataset_id=dataset_id,
        ratios={"train": body.train, "val": body.val, "test": body.test},
        seed=body.seed,
        method=body.method,
        from_version=body.from_version,
    )
    return DatasetVersionDetail.of(version, dataset.name)


@router.get("/{dataset_id}/versions/{version}/stats")
def version_stats(
    project_id: PathId, dataset_id: PathId, version: PathId, session: SessionDep, user: CurrentUser
) -> DatasetStats:
    """Counts per class per split, image sizes and objects per image, for charts."""
    row = _version(session, user, project_id, dataset_id, version)
    return DatasetStats(**stats.version_stats(row.uri))


@router.get("/{dataset_id}/versions/{version}/images")
def gallery(
    request: Request,
    project_id: PathId,
    dataset_id: PathId,
    version: PathId,
    session: SessionDep,
    user: CurrentUser,
    split: Annotated[str | None, Query(pattern="^(train|val|test)$")] = None,
    class_name: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 24,
) -> GalleryPage:
    """One page of images with thumbnails (rendered once, stored in S3), filtered by split/class."""
    row = _version(session, user, project_id, dataset_id, version)
    count, items = thumbnails.gallery_page(
        row, split=split, class_name=class_name, offset=offset, limit=limit
    )
    base = str(request.url.path)
    for item in items:
        item["image_url"] = f"{base}/{item['index']}"
        item["thumbnail_url"] = f"{base}/{item['index']}/thumbnail"
    return GalleryPage.of(count, items, offset=offset, limit=limit)


@router.get("/{dataset_id}/versions/{version}/images/{index}/thumbnail")
def thumbnail(
    project_id: PathId,
    dataset_id: PathId,
    version: PathId,
    index: PathId,
    session: SessionDep,
    user: CurrentUser,
) -> Response:
    row = _version(session, user, project_id, dataset_id, version)
    data = thumbnails.thumbnail_bytes(row, index)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/{dataset_id}/versions/{version}/images/{index}")
def full_image(
    project_id: PathId,
    dataset_id: PathId,
    version: PathId,
    index: PathId,
    session: SessionDep,
    user: CurrentUser,
) -> StreamingResponse:
    """The full-size image, streamed out of the version's archive in S3."""
    row = _version(session, user, project_id, dataset_id, version)
    media, chunks = thumbnails.stream_image(row, index)
    return StreamingResponse(chunks, media_type=media, headers={"Cache-Control": "private, max-age=86400"})
