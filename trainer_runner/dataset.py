"""Turns a dataset version in object storage (manifest + zip) into a local YOLO folder.

The trainer trusts nothing it downloads: names inside the zip come from users, so only the
entries the manifest lists are read, never extracted wholesale, and unsafe names are refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from trainer_runner.errors import DatasetError
from trainer_runner.storage import S3Client, S3Uri, download_file

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MAX_ENTRY_BYTES = 200 * 1024 * 1024  # one image; guards against zip bombs


@dataclass(frozen=True)
class PreparedDataset:
    """A YOLO dataset on local disk, ready for a framework plugin."""

    root: Path
    data_yaml: Path
    classes: list[str]
    counts: dict[str, int]


def safe_relative_path(name: str) -> PurePosixPath:
    """A relative name without `..`; user-supplied names must not escape their folder."""
    path = PurePosixPath(name.replace("\\", "/"))
    if not name or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        raise DatasetError(f"unsafe path in dataset: {name!r}")
    return path


def _check_labels(labels: Any, nc: int, where: str) -> list[list[float]]:
    if not isinstance(labels, list):
        raise DatasetError(f"{where}: labels must be a list of [class_id, cx, cy, w, h] rows")
    rows: list[list[float]] = []
    for row in labels:
        if not isinstance(row, list) or len(row) != 5:
            raise DatasetError(f"{where}: label row {row!r} is not [class_id, cx, cy, w, h]")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in row):
            raise DatasetError(f"{where}: label row {row!r} has a non-numeric value")
        cls, cx, cy, w, h = row
        if int(cls) != cls or not 0 <= cls < nc:
            raise DatasetError(f"{where}: class id {cls} is outside 0..{nc - 1}")
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)) or w <= 0 or h <= 0:
            raise DatasetError(f"{where}: box {row[1:]} is not normalised to 0..1")
        rows.append([int(cls), float(cx), float(cy), float(w), float(h)])
    return rows


def _parse_manifest(raw: bytes, task: str) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise DatasetError(f"manifest.json is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise DatasetError("manifest.json must be an object")
    if manifest.get("format", "yolo") != "yolo":
        raise DatasetError(f"unsupported dataset format {manifest.get('format')!r}")
    if manifest.get("task", task) != task:
        raise DatasetError(f"dataset is for task {manifest.get('task')!r}, the job for {task!r}")
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise DatasetError("manifest.json needs a non-empty list of class names")
    if not isinstance(manifest.get("archive"), str) or not isinstance(manifest.get("images"), list):
        raise DatasetError("manifest.json needs 'archive' (a name) and 'images' (a list)")
    return manifest


def prepare_dataset(client: S3Client, dataset_uri: S3Uri, dest: Path, task: str) -> PreparedDataset:
    """Download manifest and archive under `dest` and lay out images, labels and data.yaml."""
    manifest_path = download_file(client, dataset_uri.join("manifest.json"), dest / "manifest.json")
    manifest = _parse_manifest(manifest_path.read_bytes(), task)
    classes: list[str] = manifest["classes"]
    archive_name = safe_relative_path(manifest["archive"])
    archive = download_file(client, dataset_uri.join(str(archive_name)), dest / "archive.zip")

    root = dest / "yolo"
    counts = dict.fromkeys(SPLITS, 0)
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
            rows = _check_labels(image.get("labels", []), len(classes), name)
            try:
                info = zf.getinfo(name)
            except KeyError as exc:
                raise DatasetError(
                    f"{name} is listed in the manifest but not in the archive"
                ) from exc
            if info.file_size > MAX_ENTRY_BYTES:
                raise DatasetError(f"{name} is larger than {MAX_ENTRY_BYTES} bytes")
            data = zf.read(info)
            expected = image.get("sha256")
            if expected and hashlib.sha256(data).hexdigest() != expected:
                raise DatasetError(f"{name}: sha256 does not match the manifest")
            # Index-prefixed names cannot collide, whatever folders the user's zip had.
            stem = f"{index:06d}_{entry.stem}"
            image_path = root / "images" / split / f"{stem}{entry.suffix.lower()}"
            label_path = root / "labels" / split / f"{stem}.txt"
            image_path.parent.mkdir(parents=True, exist_ok=True)
            label_path.parent.mkdir(parents=True, exist_ok=True)
            image_path.write_bytes(data)
            label_path.write_text(
                "".join(f"{r[0]} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in rows)
            )
            counts[split] += 1
    archive.unlink()

    if counts["train"] == 0:
        raise DatasetError("the dataset has no training images (split 'train')")
    val_split = "val" if counts["val"] else "train"
    if val_split == "train":
        log.warning("dataset has no 'val' images; validating on the training split")
    data = {
        "path": str(root.resolve()),  # absolute: a relative one makes Ultralytics look elsewhere
        "train": "images/train",
        "val": f"images/{val_split}",
        "names": dict(enumerate(classes)),
    }
    if counts["test"]:
        data["test"] = "images/test"
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    log.info("dataset prepared", extra={"counts": counts, "classes": len(classes)})
    return PreparedDataset(root=root, data_yaml=data_yaml, classes=classes, counts=counts)
