"""Reading datasets and versions, always scoped to one project."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from sqlmodel import Session, col, func, select

from services.domain.models import Dataset, DatasetVersion
from services.errors import NotFound
from services.infra import storage

MANIFEST = storage.DATASET_MANIFEST
REPORT = storage.DATASET_REPORT
STATS = storage.DATASET_STATS
THUMBS = storage.DATASET_THUMBS


def list_datasets(session: Session, *, project_id: int) -> list[tuple[Dataset, DatasetVersion]]:
    """Each dataset of the project with its latest version, newest dataset first."""
    latest = (
        select(DatasetVersion.dataset_id, func.max(DatasetVersion.version).label("v"))
        .group_by(col(DatasetVersion.dataset_id))
        .subquery()
    )
    rows = session.exec(
        select(Dataset, DatasetVersion)
        .join(DatasetVersion, col(DatasetVersion.dataset_id) == Dataset.id)
        .join(
            latest,
            (latest.c.dataset_id == DatasetVersion.dataset_id) & (latest.c.v == DatasetVersion.version),
        )
        .where(Dataset.project_id == project_id)
        .order_by(col(Dataset.id).desc())
    ).all()
    return [(d, v) for d, v in rows]


def get_version(session: Session, *, project_id: int, version_id: int) -> DatasetVersion:
    """A version (by row id) of one of this project's datasets; another project's id is NotFound."""
    row = session.exec(
        select(DatasetVersion)
        .join(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .where(DatasetVersion.id == version_id, Dataset.project_id == project_id)
    ).first()
    if row is None:
        raise NotFound(f"Dataset version {version_id} does not exist in this project")
    return row


def get_dataset(session: Session, *, project_id: int, dataset_id: int) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.project_id != project_id:
        raise NotFound(f"Dataset {dataset_id} does not exist in this project")
    return dataset


def list_versions(session: Session, *, project_id: int, dataset_id: int) -> list[DatasetVersion]:
    """Every version of a dataset, newest first."""
    get_dataset(session, project_id=project_id, dataset_id=dataset_id)
    return list(
        session.exec(
            select(DatasetVersion)
            .where(DatasetVersion.dataset_id == dataset_id)
            .order_by(col(DatasetVersion.version).desc())
        ).all()
    )


def get_dataset_version(
    session: Session, *, project_id: int, dataset_id: int, version: int | None = None
) -> DatasetVersion:
    """Version number `version` of a dataset (the latest when None)."""
    get_dataset(session, project_id=project_id, dataset_id=dataset_id)
    query = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
    if version is not None:
        query = query.where(DatasetVersion.version == version)
    row = session.exec(query.order_by(col(DatasetVersion.version).desc())).first()
    if row is None:
        raise NotFound(f"Dataset {dataset_id} has no version {version}")
    return row


def load_manifest(version_uri: str) -> dict[str, Any]:
    """The manifest of a version, cached by ETag (a version's manifest never changes once written)."""
    bucket, key = storage.parse_uri(version_uri + MANIFEST)
    etag = storage.s3_client().head_object(Bucket=bucket, Key=key)["ETag"]
    return _manifest(version_uri, etag)


@lru_cache(maxsize=16)
def _manifest(version_uri: str, etag: str) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(storage.get_bytes(version_uri + MANIFEST))
    return manifest


def load_json(version_uri: str, name: str) -> dict[str, Any] | None:
    if not storage.exists(version_uri + name):
        return None
    found: dict[str, Any] = json.loads(storage.get_bytes(version_uri + name))
    return found
