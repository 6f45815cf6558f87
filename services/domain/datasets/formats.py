"""What every dataset format converts to, the checks every image gets, and format detection.

Each format module (yolo, coco, imagefolder) reads a checked archive into a `Parsed`: class names
and image records in the manifest shape of docs/trainer-protocol.md, with every problem found
added to the `Report`.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from services.domain.datasets.report import DatasetRejected, Report

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
# Pillow names the file it could not read by its repr; ours is an in-memory copy of the zip entry
# (`<_io.BytesIO object at 0x7f...>`), which means nothing to the user: the entry's name replaces it.
_IN_MEMORY_FILE = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")
EDGE_TOLERANCE = 1e-3  # normalised; rounding in exported labels may overshoot the edge a little


@dataclass
class ImageRecord:
    path: str  # entry name in the zip
    split: str | None
    width: int
    height: int
    sha256: str
    labels: list[list[float]] = field(default_factory=list)
    label: int | None = None  # classification only

    def to_manifest(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "path": self.path,
            "split": self.split or "train",
            "width": self.width,
            "height": self.height,
            "sha256": self.sha256,
            "labels": self.labels,
        }
        if self.label is not None:
            item["label"] = self.label
        return item


@dataclass
class Parsed:
    format: str
    task: str
    classes: list[str]
    images: list[ImageRecord]


def is_image_name(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def split_of(rel: str) -> str | None:
    """The split named by a folder in the path (train/val/valid/test), if any."""
    for part in rel.split("/")[:-1]:
        if part.lower() in SPLIT_ALIASES:
            return SPLIT_ALIASES[part.lower()]
    return None


class ImageReader:
    """Reads, decodes and hashes images; reports corrupt ones and skips exact duplicates."""

    def __init__(self, archive: zipfile.ZipFile, report: Report) -> None:
        self.archive = archive
        self.report = report
        self.first_by_hash: dict[str, str] = {}

    def read(self, info: zipfile.ZipInfo) -> tuple[int, int, str] | None:
        """(width, height, sha256), or None when the image is broken (error) or a duplicate (warning)."""
        name = info.filename
        try:
            data = self.archive.read(info)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            self.report.error(name, f"cannot be read from the zip ({exc}): re-create the archive")
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
                    width, height = img.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            self.report.error(name, f"image is too large to decode safely ({exc})")
            return None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            reason = _IN_MEMORY_FILE.sub(repr(name), str(exc))
            self.report.error(name, f"corrupt or unreadable image ({reason}): replace or remove it")
            return None
        digest = hashlib.sha256(data).hexdigest()
        first = self.first_by_hash.setdefault(digest, name)
        if first != name:
            self.report.warn(name, f"duplicate of {first} (same sha256): only the first copy is kept")
            self.report.counts["duplicates"] = self.report.counts.get("duplicates", 0) + 1
            return None
        return width, height, digest


def detect_format(rel_names: list[str], archive: zipfile.ZipFile, root: str) -> str:
    """'yolo', 'coco' or 'imagefolder' from the archive's layout; DatasetRejected when none fits."""
    top_yaml = [n for n in rel_names if n.endswith((".yaml", ".yml")) and n.count("/") == 0]
    if top_yaml:
        return "yolo"
    jsons = [n for n in rel_names if n.lower().endswith(".json")]
    if jsons:
        return "coco"
    parts = {p for n in rel_names for p in n.split("/")[:-1]}
    if "labels" in parts or "images" in parts:
        return "yolo"
    images = [n for n in rel_names if is_image_name(n)]
    if images and all(n.count("/") in (1, 2) for n in images):
        return "imagefolder"
    raise DatasetRejected(
        "Could not recognise the dataset layout. Zip one of: YOLO (data.yaml with 'names', "
        "images/<split>/*.jpg, labels/<split>/*.txt), COCO (an annotations .json with 'images', "
        "'annotations' and 'categories', plus the images) or ImageFolder (<class>/<image> or "
        "<split>/<class>/<image>)"
    )
