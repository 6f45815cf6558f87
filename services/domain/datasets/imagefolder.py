"""ImageFolder classification: one folder per class (`cat/001.jpg`), optionally under split
folders (`train/cat/001.jpg`). Classes are the folder names in sorted order, as torchvision does.
"""

from __future__ import annotations

import zipfile

from services.domain.datasets.formats import SPLIT_ALIASES, ImageReader, ImageRecord, Parsed, is_image_name
from services.domain.datasets.report import DatasetRejected, Report

LAYOUT = "expected <class>/<image> or <split>/<class>/<image>"


def parse(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], root: str, report: Report) -> Parsed:
    rel = {i.filename[len(root) :]: i for i in infos}
    with_splits = all(
        n.count("/") == 2 and n.split("/")[0].lower() in SPLIT_ALIASES for n in rel if is_image_name(n)
    )
    depth = 2 if with_splits else 1
    placed: list[tuple[str, str | None, str]] = []  # (name, split, class)
    for name in sorted(rel):
        parts = name.split("/")
        if not is_image_name(name):
            report.error(
                root + name, "not an image: an ImageFolder dataset holds only images in class folders"
            )
            continue
        if len(parts) != depth + 1:
            report.error(root + name, f"image is not inside a class folder ({LAYOUT})")
            continue
        split = SPLIT_ALIASES[parts[0].lower()] if with_splits else None
        placed.append((name, split, parts[-2]))
    classes = sorted({cls for _, _, cls in placed})
    if len(classes) < 2 and not report.errors:
        raise DatasetRejected(
            f"Found {len(classes)} class folder(s) ({', '.join(classes) or 'none'}): classification needs "
            f"at least two ({LAYOUT})"
        )
    index = {cls: i for i, cls in enumerate(classes)}
    reader = ImageReader(archive, report)
    images: list[ImageRecord] = []
    for name, split, cls in placed:
        read = reader.read(rel[name])
        if read is not None:
            width, height, digest = read
            images.append(ImageRecord(root + name, split, width, height, digest, [], index[cls]))
    return Parsed("imagefolder", "classify", classes, images)
