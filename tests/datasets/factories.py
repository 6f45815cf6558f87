"""Small datasets in every supported layout, built in memory for tests and the benchmark."""

from __future__ import annotations

import io
import json
import zipfile

from PIL import Image, ImageDraw


def zip_bytes(entries: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def png(
    width: int = 64, height: int = 64, colour: tuple[int, int, int] = (128, 128, 128), seed: int = 0
) -> bytes:
    """A PNG of one colour with a small seed-dependent mark, so images differ in content."""
    img = Image.new("RGB", (width, height), colour)
    ImageDraw.Draw(img).point((seed % width, (seed // width) % height), fill=(seed % 251, 7, 9))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def yolo_detect(rows: dict[str, list[str]], names: tuple[str, ...] = ("a", "b")) -> dict[str, bytes | str]:
    """entries for {"train/0": ["0 0.5 0.5 0.2 0.2"], ...}: images/<split>/<n>.png + labels."""
    entries: dict[str, bytes | str] = {"data.yaml": "names: [" + ", ".join(names) + "]\n"}
    for seed, (key, lines) in enumerate(rows.items()):
        entries[f"images/{key}.png"] = png(seed=seed)
        entries[f"labels/{key}.txt"] = "\n".join(lines) + "\n"
    return entries


def yolo_segment(count: int = 4) -> dict[str, bytes | str]:
    entries: dict[str, bytes | str] = {"data.yaml": "names:\n  0: blob\n  1: ring\n"}
    for i in range(count):
        split = "train" if i < count - 1 else "val"
        entries[f"images/{split}/{i}.png"] = png(seed=i)
        entries[f"labels/{split}/{i}.txt"] = f"{i % 2} 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6\n"
    return entries


def coco(images: int = 4, size: tuple[int, int] = (80, 60)) -> tuple[dict[str, bytes | str], dict]:
    """A COCO detection dataset: annotations/instances_train.json + images/*.png."""
    w, h = size
    doc: dict = {
        "images": [{"id": 100 + i, "file_name": f"{i}.png", "width": w, "height": h} for i in range(images)],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {"id": i, "image_id": 100 + i, "category_id": 3 if i % 2 == 0 else 7, "bbox": [10, 5, 40, 30]}
            for i in range(images)
        ],
    }
    entries: dict[str, bytes | str] = {f"images/{i}.png": png(w, h, seed=i) for i in range(images)}
    entries["annotations/instances_train.json"] = json.dumps(doc)
    return entries, doc


def digits_imagefolder(per_class: int = 12, with_splits: bool = True) -> dict[str, bytes | str]:
    """Real handwritten digits (scikit-learn's load_digits, shipped with the package) as ImageFolder."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    seen: dict[int, int] = {}
    entries: dict[str, bytes | str] = {}
    for pixels, target in zip(digits.images, digits.target, strict=True):
        n = seen.get(int(target), 0)
        if n >= per_class:
            continue
        seen[int(target)] = n + 1
        img = Image.fromarray((pixels * 16).clip(0, 255).astype("uint8"), mode="L").resize((32, 32))
        out = io.BytesIO()
        img.save(out, format="PNG")
        split = ("train" if n % 4 else "val") + "/" if with_splits else ""
        entries[f"digits/{split}{target}/{n:03d}.png"] = out.getvalue()
    return entries


def write_noise_imagefolder_zip(path: str, total_bytes: int, side: int = 1024) -> int:
    """A valid ImageFolder zip of random-noise BMPs (incompressible, stored), about `total_bytes`.

    Written image by image, so building a multi-GB archive never holds more than one image.
    Returns the archive's size in bytes.
    """
    import os

    per_image = side * side * 3
    count = max(4, total_bytes // per_image)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for i in range(count):
            img = Image.frombytes("RGB", (side, side), os.urandom(per_image))
            out = io.BytesIO()
            img.save(out, format="BMP")
            archive.writestr(f"noise/{'ab'[i % 2]}/{i:05d}.bmp", out.getvalue())
    return os.path.getsize(path)
