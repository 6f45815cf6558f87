"""Prediction views: several finished jobs' predictions on the same images, side by side, and the
images behind one cell of a job's confusion matrix. Reads only: audited when refused.

Each job's stored predictions (`artifacts/predictions/{split}.json`) are judged against the
ground truth once (`services.domain.predictions.judge`) and kept in memory by their URI (a
finished job's document never changes), so paging and filtering re-read nothing. A page carries
only its own images: presigned URLs of label-free thumbnails (the browser fetches them from the
object store directly) and each model's boxes in percent of the image, drawn over it by the page.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlmodel import Session

from services.actions.core import Actor, Audit, operation
from services.domain import predictions
from services.domain.datasets import thumbnails
from services.domain.datasets.queries import load_manifest
from services.domain.models import DatasetVersion, Job, JobState
from services.domain.permissions import Action
from services.errors import InvalidInput, NotFound
from services.infra import storage

MIN_JOBS, MAX_JOBS = 2, 4
SPLITS = ("val", "test")
MAX_PAGE = 100
_ID_MAX = 2**63 - 1  # the database's integer range


def job_ids_from(raw: str) -> list[int]:
    """`"3,4,7"` (the REST query's `jobs`) -> [3, 4, 7], or InvalidInput naming the bad part."""
    found = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        if not part.isdigit() or not 0 < int(part) <= _ID_MAX:
            raise InvalidInput(
                f"jobs: {part[:40]!r} is not a job id; give {MIN_JOBS} to {MAX_JOBS} comma-separated "
                "job ids, for example jobs=3,4"
            )
        found.append(int(part))
    return found


@dataclass(frozen=True)
class Overlay:
    """One box over a thumbnail, in percent of the image; `kind` picks its colour."""

    left: float
    top: float
    width: float
    height: float
    kind: str  # "tp" | "fp" | "missed" | "truth"
    label: str


@dataclass(frozen=True)
class ModelView:
    """One model's verdict on one image."""

    job_id: int
    boxes: list[Overlay]
    caption: str  # classification: top class and score; detection: "2 right, 1 wrong, 1 missed"
    wrong: bool


@dataclass(frozen=True)
class ImageRow:
    path: str
    thumbnail_url: str
    truth: list[Overlay]
    truth_caption: str
    models: list[ModelView]


@dataclass(frozen=True)
class PredictionPage:
    """One page of compared images and what the page around them needs."""

    task: str
    split: str
    classes: list[str]
    jobs: list[dict[str, Any]]  # {"id", "name", "model"} in the order asked
    total: int  # images that pass the filters
    offset: int
    limit: int
    rows: list[ImageRow] = field(default_factory=list)
    stored: int = 0  # images with stored predictions in every job (before filters)


@lru_cache(maxsize=64)
def _judged(uri: str) -> predictions.JudgedSet:
    """A job's predictions document, judged (cached per URI: the document never changes)."""
    doc = json.loads(storage.get_bytes(uri))
    return predictions.judge(doc)


def _judged_for(job: Job, split: str) -> predictions.JudgedSet:
    uri = (job.artifacts or {}).get(f"predictions_{split}")
    if not uri:
        raise InvalidInput(
            f"job {job.id} ({job.name}) stored no predictions for the {split} split: it finished "
            "before predictions were stored, its dataset has no such split, or its cap was 0"
        )
    return _judged(uri)


def _pct(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(width, 1), max(height, 1)
    x1, x2 = max(0.0, min(x1, w)), max(0.0, min(x2, w))
    y1, y2 = max(0.0, min(y1, h)), max(0.0, min(y2, h))
    return (
        round(100 * x1 / w, 2),
        round(100 * y1 / h, 2),
        round(100 * (x2 - x1) / w, 2),
        round(100 * (y2 - y1) / h, 2),
    )


def _model_view(job_id: int, image: predictions.JudgedImage, classes: list[str], task: str) -> ModelView:
    if task == "classify":
        top = image.predictions[0] if image.predictions else None
        caption = f"{classes[top['class_id']]} {top['score']:.2f}" if top else "no prediction"
        return ModelView(job_id, [], caption, image.wrong)
    boxes = [
        Overlay(
            *_pct(p["box"], image.width, image.height),
            p["verdict"],
            f"{classes[p['class_id']]} {p['score']:.2f}",
        )
        for p in image.predictions
    ]
    boxes += [
        Overlay(*_pct(t["box"], image.width, image.height), "missed", f"missed {classes[t['class_id']]}")
        for t in image.truth
        if t["verdict"] == "missed"
    ]
    tp = sum(p["verdict"] == "tp" for p in image.predictions)
    fp = len(image.predictions) - tp
    missed = sum(t["verdict"] == "missed" for t in image.truth)
    return ModelView(job_id, boxes, f"{tp} right · {fp} false · {missed} missed", image.wrong)


def _truth_view(image: predictions.JudgedImage, classes: list[str], task: str) -> tuple[list[Overlay], str]:
    if task == "classify":
        return [], classes[image.truth[0]["class_id"]]
    boxes = [
        Overlay(*_pct(t["box"], image.width, image.height), "truth", classes[t["class_id"]])
        for t in image.truth
    ]
    return boxes, f"{len(boxes)} object{'' if len(boxes) == 1 else 's'}"


def _rows(
    version: DatasetVersion,
    jobs: list[Job],
    sets: list[predictions.JudgedSet],
    paths: list[str],
) -> list[ImageRow]:
    """The page's rows: thumbnails (rendered once, then served by presigned URL) and overlays."""
    manifest = load_manifest(version.uri)
    index_of = {image["path"]: i for i, image in enumerate(manifest["images"])}
    missing = [p for p in paths if p not in index_of]
    if missing:
        raise NotFound(f"images {missing[:3]} are not in dataset version {version.version}")
    uris = thumbnails.plain_thumbnail_uris(version, [index_of[p] for p in paths])
    urls = storage.presigned_gets(uris)
    classes, task = sets[0].classes, sets[0].task
    rows: list[ImageRow] = []
    for path, url in zip(paths, urls, strict=True):
        first = sets[0].images[path]
        truth, truth_caption = _truth_view(first, classes, task)
        models = [
            _model_view(int(job.id or 0), s.images[path], classes, task)
            for job, s in zip(jobs, sets, strict=True)
        ]
        rows.append(ImageRow(path, url, truth, truth_caption, models))
    return rows


def _check_page(offset: int, limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE} and offset >= 0")


def _check_has_dataset(job: Job) -> None:
    """A batch run over an uploaded zip has no dataset version, so no labelled images to judge."""
    if job.dataset_version_id is None:
        raise InvalidInput(
            f"job {job.id} ({job.name}) ran over uploaded images, not a dataset version: it has no "
            "labelled predictions to judge; its results are on its job page"
        )


def _finished_jobs(session: Session, project_id: int, job_ids: Sequence[int]) -> list[Job]:
    ids = list(dict.fromkeys(int(j) for j in job_ids))
    if not MIN_JOBS <= len(ids) <= MAX_JOBS:
        raise InvalidInput(f"pick {MIN_JOBS} to {MAX_JOBS} different jobs to compare (got {len(ids)})")
    found: list[Job] = []
    for job_id in ids:
        job = session.get(Job, job_id)
        if job is None or job.project_id != project_id:
            raise NotFound(f"Job {job_id} does not exist in this project")
        found.append(job)
    for job in found:
        _check_has_dataset(job)
    versions = {j.dataset_version_id for j in found}
    if len(versions) > 1:
        detail = ", ".join(f"job {j.id} on version #{j.dataset_version_id}" for j in found)
        raise InvalidInput(
            f"these jobs trained on different dataset versions ({detail}): predictions can only be "
            "compared on the same images; pick jobs of one dataset version"
        )
    for job in found:
        if JobState(job.state) != JobState.succeeded:
            raise InvalidInput(
                f"job {job.id} ({job.name}) is {job.state}: only succeeded jobs have predictions"
            )
    return found


def compare(
    actor: Actor,
    *,
    project_id: int,
    job_ids: Sequence[int],
    split: str = "val",
    disagree: bool = False,
    class_name: str = "",
    wrong_in: int | None = None,
    offset: int = 0,
    limit: int = 12,
) -> PredictionPage:
    """One page of images that 2-4 finished jobs of one dataset version all predicted, with each
    model's boxes judged (TP / FP / missed) and the ground truth. Filters: the models disagree,
    a class (in the truth or any prediction), wrong in model `wrong_in` (a job id)."""
    _check_page(offset, limit)
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {list(SPLITS)}")
    with operation(actor, "job.compare_predictions", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id)
        jobs = _finished_jobs(op.session, project_id, job_ids)
        version = op.session.get(DatasetVersion, jobs[0].dataset_version_id)
        if version is None:
            raise NotFound(f"dataset version #{jobs[0].dataset_version_id} no longer exists")
        # The documents are read and judged side by side (only the first visit does either).
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            sets = list(pool.map(lambda job: _judged_for(job, split), jobs))
        classes = sets[0].classes
        class_id: int | None = None
        if class_name:
            if class_name not in classes:
                raise InvalidInput(f"unknown class {class_name!r}; classes: {classes}")
            class_id = classes.index(class_name)
        wrong_index: int | None = None
        if wrong_in is not None:
            ids = [j.id for j in jobs]
            if wrong_in not in ids:
                raise InvalidInput(f"'wrong in' must name one of the compared jobs {ids}")
            wrong_index = ids.index(wrong_in)
        stored = len(predictions.filter_paths(sets))
        paths = predictions.filter_paths(sets, disagree=disagree, class_id=class_id, wrong_in=wrong_index)
        page = paths[offset : offset + limit]
        return PredictionPage(
            task=sets[0].task,
            split=split,
            classes=classes,
            jobs=[{"id": j.id, "name": j.name, "model": j.model} for j in jobs],
            total=len(paths),
            offset=offset,
            limit=limit,
            rows=_rows(version, jobs, sets, page),
            stored=stored,
        )


def confusion_cell(
    actor: Actor,
    *,
    job_id: int,
    predicted: str,
    true: str,
    split: str = "val",
    offset: int = 0,
    limit: int = 12,
    project_id: int | None = None,
) -> PredictionPage:
    """The images behind one cell of a job's confusion matrix: true `true` predicted as
    `predicted` (`predicted == "background"`: missed objects of `true`; `true == "background"`:
    false detections of `predicted`), with the job's predictions drawn. `project_id` (the REST
    path's) must be the job's: a job is not reachable through another project's address."""
    _check_page(offset, limit)
    with operation(actor, "job.read", target=f"job:{job_id}", record=Audit.refusals) as op:
        job = op.session.get(Job, job_id)
        if job is None or (project_id is not None and job.project_id != project_id):
            raise NotFound(f"Job {job_id} does not exist")
        try:
            op.authorize(Action.job_read, project_id=job.project_id)
        except NotFound as exc:
            raise NotFound(f"Job {job_id} does not exist", reason=exc.reason) from exc
        _check_has_dataset(job)
        version = op.session.get(DatasetVersion, job.dataset_version_id)
        if version is None:
            raise NotFound(f"dataset version #{job.dataset_version_id} no longer exists")
        judged = _judged_for(job, split)
        names = [*judged.classes, predictions.BACKGROUND]
        for value in (predicted, true):
            if value not in names:
                raise InvalidInput(f"unknown class {value!r}; classes: {names}")
        paths = predictions.cell_paths(judged, predicted, true)
        page = paths[offset : offset + limit]
        return PredictionPage(
            task=judged.task,
            split=split,
            classes=judged.classes,
            jobs=[{"id": job.id, "name": job.name, "model": job.model}],
            total=len(paths),
            offset=offset,
            limit=limit,
            rows=_rows(version, [job], [judged], page),
            stored=len(judged.images),
        )
