"""Dataset ingestion: a zip in YOLO detection layout becomes an immutable dataset version.

The archive is checked completely before anything is written; on any failure nothing is left
behind (no S3 objects, no rows).
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any

import yaml
from PIL import Image, UnidentifiedImageError
from sqlmodel import Session, func, select

from services import storage
from services.errors import InvalidInput, NotFound
from services.models import Dataset, DatasetVersion

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
SPLITS = ("train", "val", "test")
MAX_FILES = 200_000
MAX_UNCOMPRESSED_BYTES = 20 * 1024**3
MAX_COMPRESSION_RATIO = 200


@dataclass
class Problem:
    file: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class DatasetRejected(InvalidInput):
    """The upload has problems the user must fix; `problems` lists every one found."""

    def __init__(self, summary: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or []
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{summary}{': ' + shown + more if shown else ''}")


@dataclass
class Manifest:
    format: str
    task: str
    classes: list[str]
    images: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def to_json(self, archive: str) -> bytes:
        body = {
            "format": self.format,
            "task": self.task,
            "classes": self.classes,
            "archive": archive,
            "images": self.images,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def split_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for image in self.images:
            counts[image["split"]] = counts.get(image["split"], 0) + 1
        return counts


def _check_entries(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if not infos:
        raise DatasetRejected("The archive is empty: add images/ and labels/ folders and data.yaml")
    unsafe = [
        Problem(i.filename, "absolute path or '..' in the name (path traversal) is not allowed")
        for i in infos
        if i.filename.startswith(("/", "\\"))
        or ".." in i.filename.replace("\\", "/").split("/")
        or (len(i.filename) > 1 and i.filename[1] == ":")
    ]
    if unsafe:
        raise DatasetRejected("The archive has unsafe entry names", unsafe)
    if len(infos) > MAX_FILES:
        raise DatasetRejected(f"The archive has {len(infos)} files; the limit is {MAX_FILES}")
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if total > MAX_UNCOMPRESSED_BYTES or total / packed > MAX_COMPRESSION_RATIO:
        raise DatasetRejected(
            f"The archive expands to {total} bytes ({total / packed:.0f}x its size): "
            f"limits are {MAX_UNCOMPRESSED_BYTES} bytes and {MAX_COMPRESSION_RATIO}x"
        )
    return infos


def _root_and_yaml(infos: list[zipfile.ZipInfo]) -> tuple[str, zipfile.ZipInfo]:
    yamls = [i for i in infos if i.filename.endswith((".yaml", ".yml")) and i.filename.count("/") <= 1]
    if not yamls:
        raise DatasetRejected(
            "No data.yaml found: a YOLO dataset needs data.yaml (with 'names') at the top of the zip"
        )
    chosen = sorted(yamls, key=lambda i: (i.filename.count("/"), i.filename))[0]
    root = posixpath.dirname(chosen.filename)
    return (root + "/" if root else ""), chosen


def _class_names(raw: bytes, name: str) -> list[str]:
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise DatasetRejected(f"{name} is not valid YAML ({exc})") from exc
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        try:
            names = [names[k] for k in sorted(names, key=int)]
        except (TypeError, ValueError) as exc:
            raise DatasetRejected(f"{name}: 'names' keys must be class ids 0..N-1") from exc
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetRejected(f"{name} must list class names under 'names', e.g. names: [cat, dog]")
    return names


def _parse_labels(text: str, file: str, num_classes: int, problems: list[Problem]) -> list[list[float]]:
    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            problems.append(Problem(file, f"expected 5 values 'class cx cy w h', got {len(parts)}", number))
            continue
        try:
            cls = int(parts[0])
            cx, cy, w, h = (float(p) for p in parts[1:])
        except ValueError:
            problems.append(Problem(file, "values must be numbers", number))
            continue
        if not 0 <= cls < num_classes:
            problems.append(Problem(file, f"class id {cls} is out of range 0..{num_classes - 1}", number))
            continue
        if w <= 0 or h <= 0:
            problems.append(Problem(file, "box width and height must be positive", number))
            continue
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
            problems.append(Problem(file, "box coordinates must be normalised to 0..1", number))
            continue
        rows.append([cls, cx, cy, w, h])
    return rows


def read_yolo_archive(fileobj: IO[bytes]) -> Manifest:
    """Validate a YOLO detection zip and describe it; raises DatasetRejected with every problem."""
    if not zipfile.is_zipfile(fileobj):
        raise DatasetRejected("The file is not a zip archive: upload a .zip of your dataset")
    fileobj.seek(0)
    try:
        archive = zipfile.ZipFile(fileobj)
    except zipfile.BadZipFile as exc:
        raise DatasetRejected(f"The zip archive is damaged ({exc})") from exc
    with archive:
        infos = _check_entries(archive)
        root, yaml_info = _root_and_yaml(infos)
        classes = _class_names(archive.read(yaml_info), yaml_info.filename)
        by_name = {i.filename: i for i in infos}
        problems: list[Problem] = []
        warnings: list[Problem] = []
        images: list[dict[str, Any]] = []
        label_files_used: set[str] = set()
        for info in infos:
            rel = info.filename[len(root) :] if info.filename.startswith(root) else None
            if rel is None or not rel.startswith("images/"):
                continue
            ext = posixpath.splitext(rel)[1].lower()
            if ext not in IMAGE_EXTENSIONS:
                problems.append(Problem(info.filename, f"not an image type ({ext or 'no extension'})"))
                continue
            parts = rel.split("/")
            split = parts[1] if len(parts) > 2 and parts[1] in SPLITS else "train"
            data = archive.read(info)
            try:
                with Image.open(io.BytesIO(data)) as img:
                    img.verify()
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
                    width, height = img.size
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                problems.append(Problem(info.filename, f"corrupt or unreadable image ({exc})"))
                continue
            label_name = root + "labels/" + posixpath.splitext(rel[len("images/") :])[0] + ".txt"
            labels: list[list[float]] = []
            if label_name in by_name:
                label_files_used.add(label_name)
                text = archive.read(by_name[label_name]).decode("utf-8", errors="replace")
                labels = _parse_labels(text, label_name, len(classes), problems)
            else:
                warnings.append(Problem(info.filename, "no label file: kept as a background image"))
            images.append(
                {
                    "path": info.filename,
                    "split": split,
                    "width": width,
                    "height": height,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "labels": labels,
                }
            )
        for info in infos:
            rel = info.filename[len(root) :]
            if rel.startswith("labels/") and rel.endswith(".txt") and info.filename not in label_files_used:
                warnings.append(Problem(info.filename, "label file without an image"))
    if problems:
        raise DatasetRejected(f"The dataset has {len(problems)} problem(s) to fix", problems)
    if not images:
        raise DatasetRejected("No images found: put them under images/train and images/val")
    return Manifest(format="yolo", task="detect", classes=classes, images=images, warnings=warnings)


def create_dataset_from_zip(
    session: Session, *, project_id: int, user_id: int, name: str, fileobj: IO[bytes], filename: str
) -> DatasetVersion:
    """Validate, store the archive and manifest in S3, then commit rows — all or nothing."""
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidInput("Dataset name must be 1 to 120 characters")
    manifest = read_yolo_archive(fileobj)
    size = fileobj.seek(0, io.SEEK_END)
    fileobj.seek(0)
    dataset = Dataset(project_id=project_id, name=name, created_by=user_id)
    session.add(dataset)
    session.flush()
    assert dataset.id is not None
    prefix = storage.dataset_version_prefix(project_id, dataset.id, 1)
    archive_key = "raw/" + (posixpath.basename(filename.replace("\\", "/")) or "upload.zip")
    version = DatasetVersion(
        dataset_id=dataset.id,
        version=1,
        format=manifest.format,
        task=manifest.task,
        uri=storage.uri(prefix),
        classes=manifest.classes,
        num_images=len(manifest.images),
        num_labels=sum(len(i["labels"]) for i in manifest.images),
        split_counts=manifest.split_counts(),
        size_bytes=size,
    )
    try:
        storage.upload_fileobj(fileobj, prefix + archive_key, "application/zip")
        storage.put_bytes(prefix + "manifest.json", manifest.to_json(archive_key), "application/json")
        session.add(version)
        session.commit()
    except BaseException:
        session.rollback()
        storage.delete_prefix(prefix)
        raise
    session.refresh(version)
    return version


def list_datasets(session: Session, *, project_id: int) -> list[tuple[Dataset, DatasetVersion]]:
    latest = (
        select(DatasetVersion.dataset_id, func.max(DatasetVersion.version).label("v"))
        .group_by(DatasetVersion.dataset_id)
        .subquery()
    )
    rows = session.exec(
        select(Dataset, DatasetVersion)
        .join(DatasetVersion, DatasetVersion.dataset_id == Dataset.id)
        .join(
            latest,
            (latest.c.dataset_id == DatasetVersion.dataset_id) & (latest.c.v == DatasetVersion.version),
        )
        .where(Dataset.project_id == project_id)
        .order_by(Dataset.id.desc())
    ).all()
    return [(d, v) for d, v in rows]


def get_version(session: Session, *, project_id: int, version_id: int) -> DatasetVersion:
    """A version of one of this project's datasets; another project's id is NotFound."""
    row = session.exec(
        select(DatasetVersion)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .where(DatasetVersion.id == version_id, Dataset.project_id == project_id)
    ).first()
    if row is None:
        raise NotFound(f"Dataset version {version_id} does not exist in this project")
    return row
