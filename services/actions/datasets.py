"""Dataset actions: list, read (versions, report, statistics, gallery, images), upload, new
version, split and class rename, for both channels (REST routes and the datasets pages).

Each function takes the `Actor` and runs inside one `operation`: it authorizes with
`Action.dataset_read` or `Action.dataset_write`, does the domain work (`services.domain.datasets`)
and returns public shapes. Mutations write one audit row (`dataset.upload`,
`dataset.version_upload`, `dataset.split`, `dataset.rename_classes`) whatever the outcome; a
rejected upload's row carries the validation error. Reads write a row only when refused.

Uploads arrive as a file object the caller has already put on disk (Starlette spools the request
body; the web UI copies the browser's upload to a temporary file), so memory stays flat however
large the archive. Validation reads the archive entry by entry; nothing is stored unless all of
it passes, and the version's S3 objects are deleted again if its transaction rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from services.actions.core import Actor, Audit, Operation, operation
from services.domain import datasets
from services.domain.datasets import stats, thumbnails
from services.domain.datasets.schemas import (
    DatasetVersionDetail,
    GalleryImage,
    GalleryPage,
    ReportPublic,
    UploadResult,
)
from services.domain.models import DatasetVersion, Project
from services.domain.permissions import Action
from services.domain.schemas import DatasetVersionPublic
from services.infra import storage

PREVIEW_SIZE = 1024  # longest side of the web UI's image viewer


@dataclass(frozen=True)
class DatasetList:
    """A project's datasets (latest version of each) and what the page around them shows."""

    role: str
    project_name: str
    datasets: list[DatasetVersionPublic]


@dataclass(frozen=True)
class DatasetVersions:
    """One dataset's versions, newest first, and what the page around them shows."""

    role: str
    project_name: str
    name: str
    versions: list[DatasetVersionDetail]


@dataclass(frozen=True)
class Gallery:
    """One page of a version's images; `thumbnails` (JPEG bytes, same order) only when asked for."""

    page: GalleryPage
    thumbnails: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class ImageStream:
    """A full-size image read out of the version's archive in S3 as it is sent."""

    media_type: str
    chunks: Iterator[bytes]


def _dataset_target(dataset_id: int) -> str:
    return f"dataset:{dataset_id}"


def _version_target(dataset_id: int, version: int) -> str:
    return f"dataset:{dataset_id}/v{version}"


def _project_name(op: Operation, project_id: int) -> str:
    project = op.session.get(Project, project_id)
    return project.name if project else ""


def _read_version(op: Operation, *, project_id: int, dataset_id: int, version: int) -> DatasetVersion:
    op.authorize(Action.dataset_read, project_id=project_id, target=_version_target(dataset_id, version))
    return datasets.get_dataset_version(
        op.session, project_id=project_id, dataset_id=dataset_id, version=version
    )


# --- reads ----------------------------------------------------------------------------------------


def list_datasets(actor: Actor, *, project_id: int) -> DatasetList:
    """The project's datasets, newest first, each as its latest version (viewer or higher)."""
    with operation(actor, "dataset.list", record=Audit.refusals) as op:
        role = op.authorize(Action.dataset_read, project_id=project_id, target=f"project:{project_id}")
        rows = [
            DatasetVersionPublic.of(v, d.name)
            for d, v in datasets.list_datasets(op.session, project_id=project_id)
        ]
        return DatasetList(role.value, _project_name(op, project_id), rows)


def list_versions(actor: Actor, *, project_id: int, dataset_id: int) -> DatasetVersions:
    """Every version of one dataset, newest first (viewer or higher)."""
    with operation(actor, "dataset.versions", record=Audit.refusals) as op:
        role = op.authorize(Action.dataset_read, project_id=project_id, target=_dataset_target(dataset_id))
        dataset = datasets.get_dataset(op.session, project_id=project_id, dataset_id=dataset_id)
        rows = [
            DatasetVersionDetail.of(v, dataset.name)
            for v in datasets.list_versions(op.session, project_id=project_id, dataset_id=dataset_id)
        ]
        return DatasetVersions(role.value, _project_name(op, project_id), dataset.name, rows)


def get_version(actor: Actor, *, project_id: int, dataset_id: int, version: int) -> DatasetVersionDetail:
    with operation(actor, "dataset.version", record=Audit.refusals) as op:
        row = _read_version(op, project_id=project_id, dataset_id=dataset_id, version=version)
        name = datasets.get_dataset(op.session, project_id=project_id, dataset_id=dataset_id).name
        return DatasetVersionDetail.of(row, name)


def version_report(actor: Actor, *, project_id: int, dataset_id: int, version: int) -> dict[str, Any]:
    """The validation report of an uploaded version (counts and warnings); {} for derived versions."""
    with operation(actor, "dataset.report", record=Audit.refusals) as op:
        row = _read_version(op, project_id=project_id, dataset_id=dataset_id, version=version)
        return datasets.queries.load_json(row.uri, datasets.queries.REPORT) or {}


def version_stats(actor: Actor, *, project_id: int, dataset_id: int, version: int) -> dict[str, Any]:
    """Counts per class per split, image sizes and objects per image (the charts' data)."""
    with operation(actor, "dataset.stats", record=Audit.refusals) as op:
        row = _read_version(op, project_id=project_id, dataset_id=dataset_id, version=version)
        return stats.version_stats(row.uri)


def gallery(
    actor: Actor,
    *,
    project_id: int,
    dataset_id: int,
    version: int,
    split: str | None = None,
    class_name: str | None = None,
    offset: int = 0,
    limit: int = 24,
    with_thumbnails: bool = False,
) -> Gallery:
    """One page of images, filtered by split and class; thumbnails are rendered once and kept in S3.

    `with_thumbnails`: also return each thumbnail's bytes (the web UI shows them inline; the REST
    API links to them instead).
    """
    with operation(actor, "dataset.gallery", record=Audit.refusals) as op:
        row = _read_version(op, project_id=project_id, dataset_id=dataset_id, version=version)
        count, items = thumbnails.gallery_page(
            row, split=split or None, class_name=class_name or None, offset=offset, limit=limit
        )
        page = GalleryPage(data=[GalleryImage(**i) for i in items], count=count, offset=offset, limit=limit)
        pictures = [storage.get_bytes(i.thumbnail_uri) for i in page.data] if with_thumbnails else []
        return Gallery(page, pictures)


def thumbnail(actor: Actor, *, project_id: int, dataset_id: int, version: int, index: int) -> bytes:
    """One image's thumbnail (JPEG, boxes drawn)."""
    with operation(actor, "dataset.thumbnail", record=Audit.refusals) as op:
        row = _read_version(op, project_id=project_id, dataset_id=dataset_id, version=version)
        return thumbnails.thumbnail_bytes(row, index)


def full_image(actor: Actor, *, project_id: int, dataset_id: int, version: int, index: int) -> ImageStream:
    """The image as uploaded; its bytes are read from S3 while the caller sends them."""
    with operation(actor, "dataset.image", record=Audit.refusals) as op:
        row = _read_version(op, project_id=project_id, dataset_id=dataset_id, version=version)
        media, chunks = thumbnails.stream_image(row, index)
        return ImageStream(media, chunks)


def image_preview(
    actor: Actor, *, project_id: int, dataset_id: int, version: int, index: int, size: int = PREVIEW_SIZE
) -> bytes:
    """The image with its boxes drawn, longest side at most `size` (JPEG), for the web UI's viewer."""
    with operation(actor, "dataset.image", record=Audit.refusals) as op:
        row = _read_version(op, project_id=project_id, dataset_id=dataset_id, version=version)
        _media, chunks = thumbnails.stream_image(row, index)
        image = datasets.load_manifest(row.uri)["images"][index]
        longest = max(int(image.get("width") or 0), int(image.get("height") or 0), 1)
        return thumbnails.render(b"".join(chunks), image, size=min(size, longest))


# --- writes ---------------------------------------------------------------------------------------


def check_can_upload(actor: Actor, *, project_id: int) -> None:
    """Refuse early (before the browser's file is kept on disk) when the actor may not upload.

    Only a refusal is recorded, as the `dataset.upload` it refuses; the upload itself writes the
    row of its outcome.
    """
    with operation(actor, "dataset.upload", record=Audit.refusals) as op:
        op.authorize(Action.dataset_write, project_id=project_id, target=f"project:{project_id}")


def _upload_result(version: DatasetVersion, name: str, report: datasets.Report) -> UploadResult:
    detail = DatasetVersionDetail.of(version, name)
    return UploadResult(**detail.model_dump(), report=ReportPublic.of(report))


def _upload_detail(version: DatasetVersion, filename: str, report: datasets.Report) -> str:
    images, warnings = version.num_images, len(report.warnings)
    return (
        f"v{version.version} from {filename}: {images} image{'' if images == 1 else 's'}, "
        f"{warnings} warning{'' if warnings == 1 else 's'}"
    )


def upload_dataset(
    actor: Actor, *, project_id: int, fileobj: IO[bytes], filename: str, name: str = ""
) -> UploadResult:
    """A new dataset (version 1) from a zip in YOLO, COCO or ImageFolder layout (member or higher).

    `name` defaults to the file's name without its extension. Raises DatasetRejected (every
    problem found, nothing stored), InvalidInput, NotFound, PermissionDenied.
    """
    filename = filename or "upload.zip"
    dataset_name = (name or filename.rsplit(".", 1)[0]).strip()
    with operation(actor, "dataset.upload") as op:
        op.authorize(Action.dataset_write, project_id=project_id, target=f"project:{project_id}")
        version, report = datasets.ingest_zip(
            op.session,
            project_id=project_id,
            user_id=op.me.id,  # type: ignore[arg-type]
            name=dataset_name,
            fileobj=fileobj,
            filename=filename,
        )
        op.target = _dataset_target(version.dataset_id)
        op.detail = _upload_detail(version, filename, report)
        return _upload_result(version, dataset_name, report)


def upload_version(
    actor: Actor, *, project_id: int, dataset_id: int, fileobj: IO[bytes], filename: str
) -> UploadResult:
    """A new upload to an existing dataset becomes its next version; earlier ones stay as they are.

    Same checks as the first upload, and the data must be for the dataset's task.
    """
    filename = filename or "upload.zip"
    with operation(actor, "dataset.version_upload") as op:
        op.authorize(Action.dataset_write, project_id=project_id, target=_dataset_target(dataset_id))
        dataset = datasets.get_dataset(op.session, project_id=project_id, dataset_id=dataset_id)
        version, report = datasets.ingest_new_version(
            op.session, project_id=project_id, dataset_id=dataset_id, fileobj=fileobj, filename=filename
        )
        op.detail = _upload_detail(version, filename, report)
        return _upload_result(version, dataset.name, report)


def split(
    actor: Actor,
    *,
    project_id: int,
    dataset_id: int,
    ratios: dict[str, float],
    seed: int = 0,
    method: str = "stratified",
    from_version: int | None = None,
) -> DatasetVersionDetail:
    """A NEW version with a train/val/test split (stratified, random or as uploaded)."""
    with operation(actor, "dataset.split") as op:
        op.authorize(Action.dataset_write, project_id=project_id, target=_dataset_target(dataset_id))
        dataset = datasets.get_dataset(op.session, project_id=project_id, dataset_id=dataset_id)
        version = datasets.split_version(
            op.session,
            project_id=project_id,
            dataset_id=dataset_id,
            ratios=ratios,
            seed=seed,
            method=method,
            from_version=from_version,
        )
        op.detail = f"v{version.version}: {version.note}"
        return DatasetVersionDetail.of(version, dataset.name)


def rename_classes(
    actor: Actor,
    *,
    project_id: int,
    dataset_id: int,
    names: dict[str, str],
    from_version: int | None = None,
) -> DatasetVersionDetail:
    """A NEW version whose classes carry the new names (labels, images and split unchanged)."""
    with operation(actor, "dataset.rename_classes") as op:
        op.authorize(Action.dataset_write, project_id=project_id, target=_dataset_target(dataset_id))
        dataset = datasets.get_dataset(op.session, project_id=project_id, dataset_id=dataset_id)
        version = datasets.rename_classes(
            op.session, project_id=project_id, dataset_id=dataset_id, names=names, from_version=from_version
        )
        op.detail = f"v{version.version}: {version.note}"
        return DatasetVersionDetail.of(version, dataset.name)
