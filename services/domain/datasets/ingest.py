"""Writing dataset versions: an upload becomes version 1; a new upload to the dataset, a new split
or a class rename becomes the next version. Versions never change once written.

All or nothing: the archive is checked completely before anything is written; the version row
is flushed first (so two writers cannot claim the same version prefix), then the objects are
written. The caller commits (the application layer's operation, together with the action's audit
row). If the writes fail, or the caller's transaction rolls back instead of committing, every
object under the new version's prefix is deleted.
"""

from __future__ import annotations

import io
import json
import posixpath
import random
from typing import IO, Any

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from services.domain.datasets import coco, imagefolder, yolo
from services.domain.datasets.archive import LIMITS, Limits, open_archive, strip_common_root
from services.domain.datasets.formats import SPLITS, Parsed, detect_format
from services.domain.datasets.queries import (
    MANIFEST,
    REPORT,
    STATS,
    get_dataset,
    get_dataset_version,
    load_manifest,
)
from services.domain.datasets.report import DatasetRejected, Report
from services.domain.datasets.splits import check_ratios, class_counts, split_counts, stratified_split
from services.domain.datasets.stats import compute as compute_stats
from services.domain.models import Dataset, DatasetVersion
from services.errors import Conflict, InvalidInput
from services.infra import metrics, storage

PARSERS = {"yolo": yolo.parse, "coco": coco.parse, "imagefolder": imagefolder.parse}
SPLIT_METHODS = ("stratified", "random", "keep")
# Larger archives are copied in parts (single-request copy is capped at 5 GiB by S3).
COPY_SINGLE_LIMIT = 5 * 1024**3


def _upload_archive(fileobj: IO[bytes], key: str) -> None:
    size = fileobj.seek(0, io.SEEK_END)  # counted before the upload, which may close the file
    fileobj.seek(0)
    storage.upload_fileobj(fileobj, key, "application/zip")
    metrics.INGEST_BYTES.inc(size)


def read_dataset_archive(fileobj: IO[bytes], limits: Limits = LIMITS) -> tuple[Parsed, Report]:
    """Detect the format, convert to manifest records and check everything.

    Raises DatasetRejected listing every error; warnings come back in the report.
    """
    archive, infos = open_archive(fileobj, limits)
    with archive:
        names = [i.filename for i in infos]
        root = strip_common_root(names)
        fmt = detect_format([n[len(root) :] for n in names], archive, root)
        report = Report(format=fmt)
        parsed = PARSERS[fmt](archive, infos, root, report)
    report.task = parsed.task
    report.counts.update(
        images=len(parsed.images),
        classes=len(parsed.classes),
        labels=sum(len(i.labels) for i in parsed.images),
        background=sum(1 for i in parsed.images if not i.labels and i.label is None),
        files=len(infos),
    )
    if report.errors:
        raise DatasetRejected(
            f"The dataset has {len(report.errors)} problem{'' if len(report.errors) == 1 else 's'} to fix",
            report.errors,
            report,
        )
    if not parsed.images:
        raise DatasetRejected(
            f"No usable images found in this {fmt} dataset: add images (jpg, png, bmp, webp, tif)",
            report.warnings,
            report,
        )
    return parsed, report


def _manifest_body(
    fmt: str, task: str, classes: list[str], archive: str, images: list[dict[str, Any]]
) -> bytes:
    body = {"format": fmt, "task": task, "classes": classes, "archive": archive, "images": images}
    return json.dumps(body, separators=(",", ":")).encode()


def _fill_counts(version: DatasetVersion, classes: list[str], images: list[dict[str, Any]]) -> None:
    version.classes = classes
    version.num_images = len(images)
    version.num_labels = sum(len(i["labels"]) for i in images)
    version.split_counts = split_counts(images)
    version.class_counts = class_counts(images, classes)


def _write_version(session: Session, version: DatasetVersion, prefix: str, writes: list[Any]) -> None:
    """Flush the row, run the S3 writes; the caller commits. On failure roll back, delete the prefix.

    The prefix is only deleted once the flush has claimed the version number: a writer that lost
    the race for that number must not delete the winner's objects.
    """
    try:
        session.add(version)
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            f"Version {version.version} of this dataset was just written by another request; try again"
        ) from exc
    except BaseException:
        session.rollback()
        raise
    _delete_unless_committed(session, prefix)
    try:
        for write in writes:
            write()
    except BaseException:
        session.rollback()  # deletes the prefix (see _delete_unless_committed)
        raise


def _delete_unless_committed(session: Session, prefix: str) -> None:
    """Tie the objects under `prefix` to the session's transaction: a rollback deletes them.

    The row that names them commits later, with whatever else the caller's transaction holds; if
    that commit fails or the caller rolls back, no version row points at the objects, so they go.
    """
    settled = False  # listeners stay on the (short-lived) session; only the first outcome counts

    def committed(_session: Session) -> None:
        nonlocal settled
        settled = True

    def rolled_back(_session: Session) -> None:
        nonlocal settled
        if not settled:
            settled = True
            storage.delete_prefix(prefix)

    event.listen(session, "after_commit", committed)
    event.listen(session, "after_rollback", rolled_back)


def ingest_zip(
    session: Session,
    *,
    project_id: int,
    user_id: int,
    name: str,
    fileobj: IO[bytes],
    filename: str,
    limits: Limits = LIMITS,
) -> tuple[DatasetVersion, Report]:
    """A new dataset from an uploaded zip (version 1) and its validation report.

    Raises InvalidInput (bad name) or DatasetRejected (every problem found); writes nothing then.
    """
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidInput("Dataset name must be 1 to 120 characters")
    parsed, report = read_dataset_archive(fileobj, limits)
    dataset = Dataset(project_id=project_id, name=name, created_by=user_id)
    session.add(dataset)
    session.flush()
    assert dataset.id is not None
    version = _store_upload(
        session,
        project_id=project_id,
        dataset_id=dataset.id,
        number=1,
        parsed=parsed,
        report=report,
        fileobj=fileobj,
        filename=filename,
    )
    return version, report


def _store_upload(
    session: Session,
    *,
    project_id: int,
    dataset_id: int,
    number: int,
    parsed: Parsed,
    report: Report,
    fileobj: IO[bytes],
    filename: str,
) -> DatasetVersion:
    """Write a checked upload as version `number`: archive, manifest, report and stats, then the row."""
    size = fileobj.seek(0, io.SEEK_END)
    fileobj.seek(0)
    images = [i.to_manifest() for i in parsed.images]
    prefix = storage.dataset_version_prefix(project_id, dataset_id, number)
    archive_key = "raw/" + (posixpath.basename(filename.replace("\\", "/")) or "upload.zip")
    manifest = _manifest_body(parsed.format, parsed.task, parsed.classes, archive_key, images)
    version = DatasetVersion(
        dataset_id=dataset_id,
        version=number,
        format=parsed.format,
        task=parsed.task,
        uri=storage.uri(prefix),
        size_bytes=size,
        num_warnings=len(report.warnings),
        note=f"uploaded {posixpath.basename(archive_key)}"[:500],
    )
    _fill_counts(version, parsed.classes, images)
    stats = compute_stats(json.loads(manifest))
    _write_version(
        session,
        version,
        prefix,
        [
            lambda: _upload_archive(fileobj, prefix + archive_key),
            lambda: storage.put_bytes(prefix + MANIFEST, manifest, "application/json"),
            lambda: storage.put_bytes(
                prefix + REPORT, json.dumps(report.to_dict()).encode(), "application/json"
            ),
            lambda: storage.put_bytes(prefix + STATS, json.dumps(stats).encode(), "application/json"),
        ],
    )
    return version


def ingest_new_version(
    session: Session,
    *,
    project_id: int,
    dataset_id: int,
    fileobj: IO[bytes],
    filename: str,
    limits: Limits = LIMITS,
) -> tuple[DatasetVersion, Report]:
    """A new upload to an existing dataset: the next version number; earlier versions untouched.

    Same checks as the first upload. The new data must be for the dataset's task (a dataset of
    detection images cannot continue as a classification dataset: upload that as a new dataset).
    Raises NotFound, DatasetRejected (every problem found), Conflict; writes nothing then.
    """
    latest = get_dataset_version(session, project_id=project_id, dataset_id=dataset_id)
    parsed, report = read_dataset_archive(fileobj, limits)
    if parsed.task != latest.task:
        raise DatasetRejected(
            f"This dataset is for {latest.task} but the upload is a {parsed.task} dataset "
            f"({parsed.format}); upload it as a new dataset instead",
            [],
            report,
        )
    version = _store_upload(
        session,
        project_id=project_id,
        dataset_id=dataset_id,
        number=latest.version + 1,
        parsed=parsed,
        report=report,
        fileobj=fileobj,
        filename=filename,
    )
    return version, report


def create_dataset_from_zip(
    session: Session, *, project_id: int, user_id: int, name: str, fileobj: IO[bytes], filename: str
) -> DatasetVersion:
    """Validate, store the archive and manifest in S3, then commit rows — all or nothing."""
    version, _report = ingest_zip(
        session, project_id=project_id, user_id=user_id, name=name, fileobj=fileobj, filename=filename
    )
    return version


def _copy_object(source_key: str, target_key: str, size: int) -> None:
    client = storage.s3_client()
    source = {"Bucket": storage.bucket(), "Key": source_key}
    if size < COPY_SINGLE_LIMIT:
        client.copy_object(Bucket=storage.bucket(), Key=target_key, CopySource=source)
    else:
        client.copy(source, storage.bucket(), target_key, Config=storage.TRANSFER)


def _upload_of(session: Session, version: DatasetVersion) -> DatasetVersion:
    """The uploaded version `version` descends from (through splits and renames); itself if uploaded."""
    while version.split_method != "upload" and version.parent_version_id is not None:
        parent = session.get(DatasetVersion, version.parent_version_id)
        if parent is None:
            break
        version = parent
    return version


def split_version(
    session: Session,
    *,
    project_id: int,
    dataset_id: int,
    ratios: dict[str, float],
    seed: int = 0,
    method: str = "stratified",
    from_version: int | None = None,
) -> DatasetVersion:
    """A new version of the dataset with a new train/val/test split; the source stays unchanged.

    `method`: "stratified" (by class, or by each image's rarest class for detection),
    "random" (seeded shuffle), or "keep" (the split of the upload this version comes from).
    Raises NotFound, InvalidInput. The archive is copied so each version stands alone.
    """
    if method not in SPLIT_METHODS:
        raise InvalidInput(f"Unknown split method {method!r}; use one of {list(SPLIT_METHODS)}")
    source = get_dataset_version(session, project_id=project_id, dataset_id=dataset_id, version=from_version)
    manifest = load_manifest(source.uri)
    images = [dict(i) for i in manifest["images"]]
    if method == "keep":
        upload = _upload_of(session, source)
        original = {i["path"]: i["split"] for i in load_manifest(upload.uri)["images"]}
        for image in images:
            image["split"] = original.get(image["path"], image["split"])
        used_ratios: dict[str, float] = {}
        used_seed: int | None = None
    else:
        used_ratios = check_ratios(ratios)
        used_seed = seed
        if method == "stratified":
            splits = stratified_split(images, ratios=used_ratios, seed=seed)
        else:
            rng = random.Random(seed)
            order = list(range(len(images)))
            rng.shuffle(order)
            cuts, start, splits = [], 0, [""] * len(images)
            for s in SPLITS:
                cuts.append((s, start, start + round(used_ratios[s] * len(images))))
                start = cuts[-1][2]
            for position, index in enumerate(order):
                splits[index] = next((s for s, a, b in cuts if a <= position < b), "train")
        for image, split in zip(images, splits, strict=True):
            image["split"] = split
    latest = get_dataset_version(session, project_id=project_id, dataset_id=dataset_id)
    number = latest.version + 1
    prefix = storage.dataset_version_prefix(project_id, dataset_id, number)
    source_prefix = storage.parse_uri(source.uri)[1]
    archive_key = manifest["archive"]
    body = _manifest_body(manifest["format"], manifest["task"], manifest["classes"], archive_key, images)
    stats = compute_stats(json.loads(body))
    described = ", ".join(f"{s} {r:g}" for s, r in used_ratios.items() if r) or "as uploaded"
    if used_seed is not None:
        described += f", seed {used_seed}"
    version = DatasetVersion(
        dataset_id=dataset_id,
        version=number,
        format=source.format,
        task=source.task,
        uri=storage.uri(prefix),
        size_bytes=source.size_bytes,
        parent_version_id=source.id,
        split_method=method,
        split_seed=used_seed,
        split_ratios=used_ratios,
        note=f"{method} split of v{source.version} ({described})",
    )
    _fill_counts(version, manifest["classes"], images)
    _write_derived(session, version, prefix, source, source_prefix, archive_key, body, stats)
    return version


def _write_derived(
    session: Session,
    version: DatasetVersion,
    prefix: str,
    source: DatasetVersion,
    source_prefix: str,
    archive_key: str,
    body: bytes,
    stats: dict[str, Any],
) -> None:
    """A version made from another (split, rename): its own archive copy, manifest and stats."""
    _write_version(
        session,
        version,
        prefix,
        [
            lambda: _copy_object(source_prefix + archive_key, prefix + archive_key, source.size_bytes),
            lambda: storage.put_bytes(prefix + MANIFEST, body, "application/json"),
            lambda: storage.put_bytes(prefix + STATS, json.dumps(stats).encode(), "application/json"),
        ],
    )


MAX_CLASS_NAME = 200


def _check_renames(classes: list[str], names: dict[str, str]) -> list[str]:
    """The class list after renaming, or InvalidInput naming every problem at once."""
    if not names:
        raise InvalidInput('names: give at least one class to rename, as {"old name": "new name"}')
    problems = []
    unknown = sorted(set(names) - set(classes))
    if unknown:
        problems.append(f"unknown class(es) {unknown}; the classes are {classes}")
    empty = sorted(old for old, new in names.items() if not new.strip())
    if empty:
        problems.append(f"new name(s) for {empty} are empty")
    too_long = sorted(old for old, new in names.items() if len(new.strip()) > MAX_CLASS_NAME)
    if too_long:
        problems.append(f"new name(s) for {too_long} are longer than {MAX_CLASS_NAME} characters")
    if problems:
        raise InvalidInput("Cannot rename classes: " + "; ".join(problems))
    renamed = [names[c].strip() if c in names else c for c in classes]
    if renamed == classes:
        raise InvalidInput("Cannot rename classes: every new name equals the old one, nothing would change")
    seen: dict[str, int] = {}
    for name in renamed:
        seen[name] = seen.get(name, 0) + 1
    duplicates = sorted(n for n, count in seen.items() if count > 1)
    if duplicates:
        raise InvalidInput(
            f"Cannot rename classes: {duplicates} would name more than one class; class names must stay "
            "unique (merging classes is not a rename)"
        )
    return renamed


def rename_classes(
    session: Session,
    *,
    project_id: int,
    dataset_id: int,
    names: dict[str, str],
    from_version: int | None = None,
) -> DatasetVersion:
    """A new version whose class list uses the new names; images, labels and split are unchanged.

    `names` maps old class names to new ones (classes not named keep theirs). Class ids do not
    move, so labels stay as they are. The archive is copied so each version stands alone.
    Raises NotFound, InvalidInput (unknown or empty names, duplicates after renaming), Conflict.
    """
    get_dataset(session, project_id=project_id, dataset_id=dataset_id)
    source = get_dataset_version(session, project_id=project_id, dataset_id=dataset_id, version=from_version)
    manifest = load_manifest(source.uri)
    classes = _check_renames(list(manifest["classes"]), names)
    images = manifest["images"]
    latest = get_dataset_version(session, project_id=project_id, dataset_id=dataset_id)
    number = latest.version + 1
    prefix = storage.dataset_version_prefix(project_id, dataset_id, number)
    source_prefix = storage.parse_uri(source.uri)[1]
    archive_key = manifest["archive"]
    body = _manifest_body(manifest["format"], manifest["task"], classes, archive_key, images)
    stats = compute_stats(json.loads(body))
    changes = ", ".join(
        f"{old} -> {new}" for old, new in zip(manifest["classes"], classes, strict=True) if old != new
    )
    version = DatasetVersion(
        dataset_id=dataset_id,
        version=number,
        format=source.format,
        task=source.task,
        uri=storage.uri(prefix),
        size_bytes=source.size_bytes,
        parent_version_id=source.id,
        split_method="rename",
        split_seed=source.split_seed,
        split_ratios=dict(source.split_ratios),
        note=f"renamed classes of v{source.version}: {changes}"[:500],
    )
    _fill_counts(version, classes, images)
    _write_derived(session, version, prefix, source, source_prefix, archive_key, body, stats)
    return version
