"""Turns a dataset version in object storage (manifest + zip) into a local YOLO folder.

The trainer trusts nothing it downloads: names inside the zip come from users, so only the
entries the manifest lists are read, never extracted wholesale, and unsafe names are refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from trainer_runner.errors import DatasetError
from trainer_runner.storage import S3Client, S3Uri, download_file

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MAX_ENTRY_BYTES = 200 * 1024 * 1024  # one image; guards against zip bombs


TASKS = ("detect", "segment", "classify")


@dataclass(frozen=True)
class PreparedDataset:
    """A dataset on local disk, ready for a framework plugin.

    detect/segment: YOLO layout with `data.yaml`. classify: an ImageFolder tree
    `root/{train,val}/{class}/...` (`data_yaml` still lists the names; plugins use `root`).
    """

    root: Path
    data_yaml: Path
    classes: list[str]
    counts: dict[str, int]
    skipped: list[dict[str, str]] = field(default_factory=list)  # corrupt images left out

    def report(self) -> dict[str, Any]:
        """What the job trained on, for the callback and `artifacts/dataset_report.json`."""
        return {"counts": self.counts, "skipped": self.skipped, "classes": self.classes}


def safe_relative_path(name: str) -> PurePosixPath:
    """A relative name without `..`; user-supplied names must not escape their folder."""
    path = PurePosixPath(name.replace("\\", "/"))
    if not name or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        raise DatasetError(f"unsafe path in dataset: {name!r}")
    return path


def _class_id(value: Any, classes: list[str], where: str) -> int:
    """A valid class id, or a message saying which classes exist and how to fix it."""
    nc = len(classes)
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise DatasetError(f"{where}: class id {value!r} is not a whole number")
    if not 0 <= value < nc:
        known = ", ".join(f"{i}={name}" for i, name in enumerate(classes))
        raise DatasetError(
            f"{where}: a label uses class id {int(value)}, but the dataset defines only {nc} "
            f"classes ({known}); fix the label or add the class to the dataset's class list"
        )
    return int(value)


def _numbers(row: list[Any], where: str) -> None:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in row):
        raise DatasetError(f"{where}: label row {row!r} has a non-numeric value")


def _check_labels(labels: Any, classes: list[str], where: str, task: str) -> list[list[float]]:
    """Validated label rows: detect `[cls, cx, cy, w, h]`, segment `[cls, x1, y1, x2, y2, ...]`."""
    shape = "[class_id, cx, cy, w, h]" if task == "detect" else "[class_id, x1, y1, x2, y2, ...]"
    if not isinstance(labels, list):
        raise DatasetError(f"{where}: labels must be a list of {shape} rows")
    rows: list[list[float]] = []
    for row in labels:
        if not isinstance(row, list) or not row:
            raise DatasetError(f"{where}: label row {row!r} is not {shape}")
        _numbers(row, where)
        cls = _class_id(row[0], classes, where)
        coords = [float(v) for v in row[1:]]
        if task == "detect":
            if len(coords) != 4:
                raise DatasetError(f"{where}: label row {row!r} is not {shape}")
            if not all(0.0 <= v <= 1.0 for v in coords) or coords[2] <= 0 or coords[3] <= 0:
                raise DatasetError(f"{where}: box {coords} is not normalised to 0..1")
        else:
            if len(coords) < 6 or len(coords) % 2:
                raise DatasetError(f"{where}: polygon {row!r} needs at least 3 x,y points")
            if not all(0.0 <= v <= 1.0 for v in coords):
                raise DatasetError(f"{where}: polygon points {coords} are not normalised to 0..1")
        rows.append([cls, *coords])
    return rows


def _image_problem(data: bytes) -> str | None:
    """Why these bytes are not a readable image, or None. Decodes fully: truncation shows."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as exc:  # PIL raises many types for bad data
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def _class_folders(classes: list[str]) -> list[str]:
    """ImageFolder readers sort folder names: keep user names when that keeps the ids."""
    safe = [re.sub(r"[^A-Za-z0-9 _.-]", "_", c).strip(" .") or "_" for c in classes]
    if safe == classes and sorted(safe) == safe and len(set(safe)) == len(safe):
        return safe
    return [f"{i:04d}_{name}" for i, name in enumerate(safe)]


def _parse_manifest(raw: bytes, task: str) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise DatasetError(f"manifest.json is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise DatasetError("manifest.json must be an object")
    if task not in TASKS:
        raise DatasetError(f"unknown task {task!r}; datasets are for {list(TASKS)}")
    if manifest.get("task", "detect") != task:
        raise DatasetError(f"dataset is for task {manifest.get('task')!r}, the job for {task!r}")
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise DatasetError("manifest.json needs a non-empty list of class names")
    if not isinstance(manifest.get("archive"), str) or not isinstance(manifest.get("images"), list):
        raise DatasetError("manifest.json needs 'archive' (a name) and 'images' (a list)")
    return manifest


def prepare_dataset(client: S3Client, dataset_uri: S3Uri, dest: Path, task: str) -> PreparedDataset:
    """Download manifest and archive under `dest` and lay out images, labels and data.yaml.

    Label errors fail the job (the user must fix them); an image that cannot be decoded is left
    out and listed in `skipped`, so one bad file does not cost a whole training.
    """
    manifest_path = download_file(client, dataset_uri.join("manifest.json"), dest / "manifest.json")
    manifest = _parse_manifest(manifest_path.read_bytes(), task)
    classes: list[str] = manifest["classes"]
    folders = _class_folders(classes)
    archive_name = safe_relative_path(manifest["archive"])
    archive = download_file(client, dataset_uri.join(str(archive_name)), dest / "archive.zip")

    root = dest / ("folder" if task == "classify" else "yolo")
    counts = dict.fromkeys(SPLITS, 0)
    per_class: dict[str, set[int]] = {split: set() for split in SPLITS}
    skipped: list[dict[str, str]] = []
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"dataset archive {archive_name} is not a zip file") from exc
    with zf:
        for index, image in enumerate(manifest["images"]):
            if not isinstance(image, dict) or not isinstance(image.get("path"), str):
                raise DatasetError(f"images[{index}] needs a 'path'")
            name = image["path"]
            entry = safe_relative_path(name)
            split = image.get("split", "train")
            if split not in SPLITS:
                raise DatasetError(f"{name}: unknown split {split!r}")
            if task == "classify":
                if "label" not in image:
                    raise DatasetError(f"{name}: a classification image needs 'label': class_id")
                label = _class_id(image["label"], classes, name)
                rows: list[list[float]] = []
            else:
                rows = _check_labels(image.get("labels", []), classes, name, task)
            try:
                info = zf.getinfo(name)
            except KeyError as exc:
                raise DatasetError(f"{name} is listed in the manifest but not in the archive") from exc
            if info.file_size > MAX_ENTRY_BYTES:
                raise DatasetError(f"{name} is larger than {MAX_ENTRY_BYTES} bytes")
            data = zf.read(info)
            expected = image.get("sha256")
            if expected and hashlib.sha256(data).hexdigest() != expected:
                raise DatasetError(f"{name}: sha256 does not match the manifest")
            problem = _image_problem(data)
            if problem is not None:
                log.warning("corrupt image skipped", extra={"path": name, "reason": problem})
                skipped.append({"path": name, "split": split, "reason": problem})
                continue
            # Index-prefixed names cannot collide, whatever folders the user's zip had.
            stem = f"{index:06d}_{entry.stem}"
            if task == "classify":
                image_path = root / split / folders[label] / f"{stem}{entry.suffix.lower()}"
                per_class[split].add(label)
            else:
                image_path = root / "images" / split / f"{stem}{entry.suffix.lower()}"
                label_path = root / "labels" / split / f"{stem}.txt"
                label_path.parent.mkdir(parents=True, exist_ok=True)
                label_path.write_text(
                    "".join(" ".join([str(int(r[0]))] + [f"{v:.6f}" for v in r[1:]]) + "\n" for r in rows)
                )
            image_path.parent.mkdir(parents=True, exist_ok=True)
            image_path.write_bytes(data)
            counts[split] += 1
    archive.unlink()

    if counts["train"] == 0:
        raise DatasetError("the dataset has no training images (split 'train')")
    val_split = "val" if counts["val"] else "train"
    if val_split == "train":
        log.warning("dataset has no 'val' images; validating on the training split")
    if task == "classify":
        _check_class_coverage(per_class, classes, val_split)
        if val_split == "train":
            shutil.copytree(root / "train", root / "val")
    spec: dict[str, Any] = {
        "path": str(root.resolve()),  # absolute: a relative one makes Ultralytics look elsewhere
        "train": "train" if task == "classify" else "images/train",
        "val": "val" if task == "classify" else f"images/{val_split}",
        "names": dict(enumerate(classes)),
    }
    if counts["test"]:
        spec["test"] = "test" if task == "classify" else "images/test"
    data_yaml = root / "data.yaml" if task != "classify" else dest / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
    log.info(
        "dataset prepared",
        extra={"counts": counts, "classes": len(classes), "skipped": len(skipped)},
    )
    return PreparedDataset(root=root, data_yaml=data_yaml, classes=classes, counts=counts, skipped=skipped)


def _check_class_coverage(per_class: dict[str, set[int]], classes: list[str], val_split: str) -> None:
    """ImageFolder readers number classes by the folders present: every class needs images."""
    for split in ("train", val_split):
        missing = [classes[i] for i in range(len(classes)) if i not in per_class[split]]
        if missing:
            raise DatasetError(
                f"classes {missing} have no images in split {split!r}; every class needs at "
                f"least one {split} image (add images or remove the class)"
            )
