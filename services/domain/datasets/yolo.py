"""YOLO layout: data.yaml with `names`, images under an `images/` folder, one label .txt per image
under the matching `labels/` folder. Works for `images/train/..` and Roboflow's `train/images/..`.

Rows `class cx cy w h` make a detection dataset; rows `class x1 y1 x2 y2 ...` (a polygon, at
least three points) make a segmentation dataset (or `task: segment` in data.yaml).
"""

from __future__ import annotations

import math
import posixpath
import zipfile

import yaml

from services.domain.datasets.formats import (
    EDGE_TOLERANCE,
    ImageReader,
    ImageRecord,
    Parsed,
    is_image_name,
    split_of,
)
from services.domain.datasets.report import DatasetRejected, Report


def _class_names(raw: bytes, name: str) -> list[str]:
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise DatasetRejected(f"{name} is not valid YAML ({exc}): fix the syntax") from exc
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        try:
            keys = sorted(names, key=int)
        except (TypeError, ValueError) as exc:
            raise DatasetRejected(f"{name}: 'names' keys must be class ids 0..N-1") from exc
        if [int(k) for k in keys] != list(range(len(keys))):
            raise DatasetRejected(f"{name}: 'names' keys must be class ids 0..N-1 without gaps")
        names = [names[k] for k in keys]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise DatasetRejected(f"{name} must list class names under 'names', e.g. names: [cat, dog]")
    if len(set(names)) != len(names):
        raise DatasetRejected(f"{name}: class names must be unique")
    return names


def _yaml_task(raw: bytes) -> str | None:
    data = yaml.safe_load(raw)
    task = data.get("task") if isinstance(data, dict) else None
    return task if task in ("detect", "segment") else None


def label_name_for(rel_image: str) -> str:
    parts = rel_image.split("/")
    index = len(parts) - 1 - parts[::-1].index("images")
    parts[index] = "labels"
    return posixpath.splitext("/".join(parts))[0] + ".txt"


def _rows(text: str) -> list[tuple[int, list[str]]]:
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _check_row(
    parts: list[str], task: str, num_classes: int, file: str, line: int, report: Report
) -> list[float] | None:
    try:
        values = [float(p) for p in parts]
    except ValueError:
        report.error(file, f"values must be numbers, got {' '.join(parts)!r}", line)
        return None
    if not all(math.isfinite(v) for v in values) or values[0] != int(values[0]):
        report.error(file, "class id must be a whole number and coordinates finite", line)
        return None
    cls = int(values[0])
    if not 0 <= cls < num_classes:
        report.error(file, f"class id {cls} is out of range 0..{num_classes - 1}", line)
        return None
    coords = values[1:]
    lo, hi = -EDGE_TOLERANCE, 1 + EDGE_TOLERANCE
    if task == "detect":
        if len(parts) != 5:
            report.error(file, f"expected 5 values 'class cx cy w h', got {len(parts)}", line)
            return None
        cx, cy, w, h = coords
        if w <= 0 or h <= 0:
            report.error(file, "box width and height must be positive", line)
            return None
        if not (lo <= cx - w / 2 and cx + w / 2 <= hi and lo <= cy - h / 2 and cy + h / 2 <= hi):
            report.error(
                file, "box lies (partly) outside the image: coordinates are normalised to 0..1", line
            )
            return None
        return [cls, cx, cy, w, h]
    if len(coords) < 6 or len(coords) % 2:
        report.error(
            file,
            f"expected a polygon 'class x1 y1 x2 y2 x3 y3 ...' (3+ points), got {len(parts)} values",
            line,
        )
        return None
    if not all(lo <= v <= hi for v in coords):
        report.error(file, "polygon point lies outside the image: coordinates are normalised to 0..1", line)
        return None
    xs, ys = coords[0::2], coords[1::2]
    area = abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))) / 2
    if area <= 0:
        report.error(file, "polygon has zero area", line)
        return None
    return [cls, *(min(1.0, max(0.0, v)) for v in coords)]


def parse(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], root: str, report: Report) -> Parsed:
    rel = {i.filename[len(root) :]: i for i in infos}
    yamls = sorted(n for n in rel if n.endswith((".yaml", ".yml")) and n.count("/") == 0)
    if not yamls:
        raise DatasetRejected(
            "No data.yaml found: a YOLO dataset needs data.yaml (with 'names') at the top of the zip"
        )
    yaml_name = "data.yaml" if "data.yaml" in yamls else yamls[0]
    raw_yaml = archive.read(rel[yaml_name])
    classes = _class_names(raw_yaml, root + yaml_name)
    label_texts: dict[str, list[tuple[int, list[str]]]] = {}
    image_names: list[str] = []
    for name in rel:
        parts = name.split("/")[:-1]
        if "images" in parts:
            if is_image_name(name):
                image_names.append(name)
            else:
                ext = posixpath.splitext(name)[1] or "no extension"
                report.error(root + name, f"not an image ({ext}): remove it from the images folder")
        elif "labels" in parts and name.endswith(".txt"):
            try:
                label_texts[name] = _rows(archive.read(rel[name]).decode("utf-8"))
            except UnicodeDecodeError:
                report.error(root + name, "label file is not UTF-8 text")
                label_texts[name] = []
        elif name not in yamls and not name.endswith(".cache"):
            report.warn(root + name, "not part of the YOLO layout (images/, labels/, data.yaml): ignored")
    declared = _yaml_task(raw_yaml)
    longest = max((len(p) for rows in label_texts.values() for _, p in rows), default=5)
    task = declared or ("segment" if longest > 5 else "detect")
    reader = ImageReader(archive, report)
    images: list[ImageRecord] = []
    used: set[str] = set()
    for name in sorted(image_names):
        label_name = label_name_for(name)
        rows: list[list[float]] = []
        if label_name in label_texts:
            used.add(label_name)
            for line, parts in label_texts[label_name]:
                row = _check_row(parts, task, len(classes), root + label_name, line, report)
                if row is not None:
                    rows.append(row)
        read = reader.read(rel[name])
        if read is None:
            continue
        if label_name not in label_texts:
            report.warn(root + name, "no label file: kept as a background image")
        elif not rows:
            report.warn(root + name, "empty label file: kept as a background image")
        width, height, digest = read
        images.append(ImageRecord(root + name, split_of(name), width, height, digest, rows))
    for name in sorted(set(label_texts) - used):
        report.warn(root + name, "label file without an image: ignored")
    return Parsed("yolo", task, classes, images)
