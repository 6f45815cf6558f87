"""Public shapes of datasets for the REST API and the UI (rows never leave services/)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from services.domain.datasets.report import Report
from services.domain.models import DatasetVersion
from services.domain.schemas import DatasetVersionPublic


class ProblemPublic(BaseModel):
    file: str
    line: int | None = None
    message: str


class ReportPublic(BaseModel):
    format: str
    task: str
    counts: dict[str, int]
    errors: list[ProblemPublic]
    warnings: list[ProblemPublic]

    @classmethod
    def of(cls, report: Report) -> ReportPublic:
        return cls.model_validate(report.to_dict())


class DatasetVersionDetail(DatasetVersionPublic):
    parent_version_id: int | None = None
    split_method: str = "upload"
    split_seed: int | None = None
    split_ratios: dict[str, float] = Field(default_factory=dict)
    class_counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    num_warnings: int = 0
    note: str = ""

    @classmethod
    def of(cls, version: DatasetVersion, name: str = "") -> DatasetVersionDetail:
        return cls(name=name, **version.model_dump(exclude={"created_at"}), created_at=version.created_at)


class UploadResult(DatasetVersionDetail):
    """201 answer to an upload: the new version plus its validation report (warnings only)."""

    report: ReportPublic


class RejectedUpload(BaseModel):
    """422 answer to an upload with problems: nothing was stored."""

    detail: str
    problems: list[ProblemPublic]
    problem_count: int
    report: ReportPublic | None = None


class SplitRequest(BaseModel):
    train: float = Field(default=0.8, ge=0, le=1)
    val: float = Field(default=0.1, ge=0, le=1)
    test: float = Field(default=0.1, ge=0, le=1)
    seed: int = 0
    method: Literal["stratified", "random", "keep"] = "stratified"
    from_version: int | None = Field(default=None, description="version number to split; latest if omitted")


class RenameRequest(BaseModel):
    names: dict[str, str] = Field(description="old class name -> new class name; others keep theirs")
    from_version: int | None = Field(default=None, description="version number to rename; latest if omitted")


class DatasetStats(BaseModel):
    task: str
    classes: list[str]
    num_images: int
    split_counts: dict[str, int]
    images_per_class: dict[str, dict[str, int]]
    instances_per_class: dict[str, dict[str, int]]
    objects_per_image: dict[str, dict[str, int]]
    background_images: int
    image_sizes: list[dict[str, int]]
    width: dict[str, float]
    height: dict[str, float]
    class_colours: list[str] = Field(default_factory=list)


class GalleryImage(BaseModel):
    index: int
    path: str
    split: str
    width: int
    height: int
    classes: list[str]
    num_objects: int
    thumbnail_uri: str
    thumbnail_url: str = ""
    image_url: str = ""


class GalleryPage(BaseModel):
    data: list[GalleryImage]
    count: int
    offset: int
    limit: int

    @classmethod
    def of(cls, count: int, items: list[dict[str, Any]], *, offset: int, limit: int) -> GalleryPage:
        return cls(data=[GalleryImage(**i) for i in items], count=count, offset=offset, limit=limit)
