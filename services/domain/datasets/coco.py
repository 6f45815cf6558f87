"""COCO detection: one or more annotation .json files (`images`, `annotations`, `categories`)
and the image files they name. A json named after a split (instances_train2017.json,
train/_annotations.coco.json) sets that split for its images.

Boxes `[x, y, w, h]` in pixels become normalised `[class, cx, cy, w, h]` rows, with categories
renumbered 0..N-1 in order of their ids.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import zipfile
from typing import Any

from services.domain.datasets.formats import (
    SPLIT_ALIASES,
    ImageReader,
    ImageRecord,
    Parsed,
    is_image_name,
    split_of,
)
from services.domain.datasets.report import DatasetRejected, Report

PIXEL_TOLERANCE = 1.0


def _json_split(name: str) -> str | None:
    for token in re.split(r"[^a-z]+", name.lower()):
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    return None


def _load(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str, report: Report
) -> dict[str, Any] | None:
    try:
        data = json.loads(archive.read(info))
    except (ValueError, UnicodeDecodeError) as exc:
        report.error(shown, f"not valid JSON ({exc})")
        return None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        report.error(
            shown, "not a COCO annotation file: it needs lists 'images', 'annotations', 'categories'"
        )
        return None
    return data


def _categories(docs: dict[str, dict[str, Any]], report: Report) -> dict[int, str]:
    names: dict[int, str] = {}
    for shown, doc in docs.items():
        for index, cat in enumerate(doc["categories"]):
            if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not cat.get("name"):
                report.error(shown, f"categories[{index}] needs an integer 'id' and a 'name'")
                continue
            previous = names.setdefault(cat["id"], str(cat["name"]))
            if previous != str(cat["name"]):
                report.error(
                    shown, f"category id {cat['id']} is {cat['name']!r} here but {previous!r} elsewhere"
                )
    return names


class _Resolver:
    """Finds the archive entry a COCO `file_name` means."""

    def __init__(self, image_rel: list[str]) -> None:
        self.exact = set(image_rel)
        self.by_base: dict[str, list[str]] = {}
        for name in image_rel:
            self.by_base.setdefault(posixpath.basename(name), []).append(name)

    def find(self, file_name: str, json_dir: str) -> str | None:
        file_name = file_name.replace("\\", "/").lstrip("./")
        for candidate in (file_name, posixpath.join(json_dir, file_name) if json_dir else file_name):
            if candidate in self.exact:
                return candidate
        tails = [
            n for n in self.by_base.get(posixpath.basename(file_name), []) if n.endswith("/" + file_name)
        ]
        if len(tails) == 1:
            return tails[0]
        same_base = self.by_base.get(posixpath.basename(file_name), [])
        return same_base[0] if len(same_base) == 1 else None


def _file_name(doc: dict[str, Any], image_id: Any) -> str:
    return str(next(i["file_name"] for i in doc["images"] if isinstance(i, dict) and i.get("id") == image_id))


def _box(
    ann: dict[str, Any], width: int, height: int, cls: int, shown: str, where: str, report: Report
) -> list[float] | None:
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
        report.error(shown, f"{where}: 'bbox' must be [x, y, width, height] in pixels")
        return None
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        report.error(shown, f"{where}: bbox values must be finite numbers")
        return None
    if w <= 0 or h <= 0:
        report.error(shown, f"{where}: box width and height must be positive, got {w:g}x{h:g}")
        return None
    t = PIXEL_TOLERANCE
    if x < -t or y < -t or x + w > width + t or y + h > height + t:
        report.error(shown, f"{where}: box {bbox} lies outside the {width}x{height} image")
        return None
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    return [cls, (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]


def parse(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], root: str, report: Report) -> Parsed:
    rel = {i.filename[len(root) :]: i for i in infos}
    docs: dict[str, dict[str, Any]] = {}
    for name in sorted(n for n in rel if n.lower().endswith(".json")):
        doc = _load(archive, rel[name], root + name, report)
        if doc is not None:
            docs[name] = doc
    if not docs:
        raise DatasetRejected("No COCO annotation file could be read", report.errors)
    cat_names = _categories({root + k: v for k, v in docs.items()}, report)
    if not cat_names:
        raise DatasetRejected(
            "The COCO files define no categories: add 'categories' with id and name", report.errors
        )
    cat_ids = sorted(cat_names)
    class_of = {cid: index for index, cid in enumerate(cat_ids)}
    image_rel = [n for n in rel if is_image_name(n)]
    for name in rel:
        if not name.lower().endswith(".json") and not is_image_name(name):
            report.warn(root + name, "neither an image nor a COCO .json: ignored")
    resolver = _Resolver(image_rel)
    reader = ImageReader(archive, report)
    images: list[ImageRecord] = []
    claimed: set[str] = set()
    for json_name, doc in docs.items():
        shown = root + json_name
        json_dir = posixpath.dirname(json_name)
        entries: dict[Any, tuple[str, dict[str, Any]] | None] = {}
        for index, img in enumerate(doc["images"]):
            if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
                report.error(shown, f"images[{index}] needs 'id' and 'file_name'")
                continue
            entries[img["id"]] = None
            found = resolver.find(img["file_name"], json_dir)
            if found is None:
                continue
            if found in claimed:
                report.warn(root + found, f"listed again in {shown}: the first listing is used")
                continue
            claimed.add(found)
            entries[img["id"]] = (found, img)
        rows: dict[Any, list[list[float]]] = {}
        pending: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
        for index, ann in enumerate(doc["annotations"]):
            where = f"annotations[{index}] (id {ann.get('id') if isinstance(ann, dict) else '?'})"
            if not isinstance(ann, dict):
                report.error(shown, f"{where} must be an object")
                continue
            image_id = ann.get("image_id")
            if image_id not in entries:
                report.error(shown, f"{where}: image_id {image_id!r} is not in 'images'")
                continue
            if entries[image_id] is None:
                report.error(
                    shown,
                    f"{where}: points at image {_file_name(doc, image_id)!r}, which is not in the archive",
                )
                continue
            if ann.get("category_id") not in class_of:
                cat = ann.get("category_id")
                report.error(
                    shown, f"{where}: category_id {cat!r} is not in 'categories' (class id out of range)"
                )
                continue
            pending.setdefault(image_id, []).append((index, ann))
        for image_id, entry in entries.items():
            if entry is None:
                continue
            found, img = entry
            read = reader.read(rel[found])
            if read is None:
                continue
            width, height, digest = read
            if img.get("width") not in (None, width) or img.get("height") not in (None, height):
                report.warn(
                    root + found,
                    f"{shown} says {img.get('width')}x{img.get('height')}, the image is {width}x{height}: "
                    "the image's own size is used",
                )
            rows[image_id] = []
            for index, ann in pending.get(image_id, []):
                where = f"annotations[{index}] (id {ann.get('id')})"
                box = _box(ann, width, height, class_of[ann["category_id"]], shown, where, report)
                if box is not None:
                    rows[image_id].append(box)
            if not rows[image_id]:
                report.warn(root + found, "no annotations: kept as a background image")
            split = _json_split(posixpath.basename(json_name)) or split_of(found)
            images.append(ImageRecord(root + found, split, width, height, digest, rows[image_id]))
        for img_id in [k for k, v in entries.items() if v is None]:
            listed = _file_name(doc, img_id)
            report.warn(shown, f"image {listed!r} is listed but not in the archive: skipped")
    for name in sorted(set(image_rel) - claimed):
        report.warn(root + name, "image not listed in any COCO .json: ignored")
    return Parsed("coco", "detect", [cat_names[c] for c in cat_ids], images)
