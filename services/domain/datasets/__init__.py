"""Datasets: upload (YOLO detect/segment, COCO, ImageFolder), validation, immutable versions,
splits, statistics and the preview gallery. Everything a dataset is lives in S3; rows hold
metadata only.

Modules: `archive` (safe zip opening), `formats` + `yolo`/`coco`/`imagefolder` (conversion to
the manifest), `report` (problems), `ingest` (writing versions), `splits`, `stats`,
`thumbnails`, `queries` (reads), `schemas` (public shapes).
"""

from services.domain.datasets.ingest import (
    create_dataset_from_zip,
    ingest_new_version,
    ingest_zip,
    read_dataset_archive,
    rename_classes,
    split_version,
)
from services.domain.datasets.queries import (
    get_dataset,
    get_dataset_version,
    get_version,
    list_datasets,
    list_versions,
    load_manifest,
)
from services.domain.datasets.report import DatasetRejected, Problem, Report

__all__ = [
    "DatasetRejected",
    "Problem",
    "Report",
    "create_dataset_from_zip",
    "get_dataset",
    "get_dataset_version",
    "get_version",
    "ingest_new_version",
    "ingest_zip",
    "list_datasets",
    "list_versions",
    "load_manifest",
    "read_dataset_archive",
    "rename_classes",
    "split_version",
]
