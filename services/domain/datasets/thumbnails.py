"""The preview gallery: thumbnails with boxes, polygons or the class drawn in class colours.

A thumbnail is rendered the first time a gallery page asks for it and stored in S3 next to the
version (`thumbs/000123.jpg`); later pages read it from there. Images are read out of the
version's archive in S3 with range requests, never by downloading the whole zip.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError
from PIL import Image, ImageDraw

from services.domain.datasets.queries import THUMBS, load_manifest
from services.domain.datasets.remote import open_remote
from services.domain.datasets.splits import image_classes
from services.domain.models import DatasetVersion
from services.errors import InvalidInput, NotFound
from services.infra import storage

THUMB_SIZE = 256
# Distinct, saturated colours that stay visible on photos; class i uses PALETTE[i % len].
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (255, 225, 25),
    (0, 128, 128),
)
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


def class_colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[class_id % len(PALETTE)]


def colour_hex(class_id: int) -> str:
    r, g, b = class_colour(class_id)
    return f"#{r:02x}{g:02x}{b:02x}"


def render(data: bytes, image: dict[str, Any], size: int = THUMB_SIZE) -> bytes:
    """A JPEG thumbnail (longest side `size`) with the image's labels drawn on it."""
    with Image.open(io.BytesIO(data)) as original:
        img = original.convert("RGB")
    img.thumbnail((size, size))
    w, h = img.size
    draw = ImageDraw.Draw(img, "RGBA")
    line = max(2, round(min(w, h) / 80))
    if image.get("label") is not None:
        draw.rectangle((0, 0, w - 1, h - 1), outline=class_colour(int(image["label"])), width=line * 2)
    for row in image.get("labels", []):
        colour = class_colour(int(row[0]))
        if len(row) == 5:
            _, cx, cy, bw, bh = row
            box = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
            draw.rectangle(box, outline=colour, width=line)
        else:
            points = [(row[i] * w, row[i + 1] * h) for i in range(1, len(row) - 1, 2)]
            draw.polygon(points, fill=(*colour, 70), outline=colour, width=line)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90, subsampling=0)  # 4:4:4 keeps thin coloured lines
    return out.getvalue()


def filter_images(
    manifest: dict[str, Any], *, split: str | None = None, class_name: str | None = None
) -> list[int]:
    """Indexes of the manifest images in `split` that hold `class_name` (either may be None)."""
    class_id: int | None = None
    if class_name is not None:
        if class_name not in manifest["classes"]:
            raise InvalidInput(f"Unknown class {class_name!r}; classes: {manifest['classes']}")
        class_id = manifest["classes"].index(class_name)
    return [
        index
        for index, image in enumerate(manifest["images"])
        if (split is None or image["split"] == split)
        and (class_id is None or class_id in image_classes(image))
    ]


def _thumb_key(version: DatasetVersion, index: int, plain: bool = False) -> str:
    folder = storage.DATASET_PLAIN_THUMBS if plain else THUMBS
    return storage.parse_uri(version.uri)[1] + folder + f"{index:06d}.jpg"


def _exists(key: str) -> bool:
    try:
        storage.s3_client().head_object(Bucket=storage.bucket(), Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


def ensure_thumbnails(version: DatasetVersion, indexes: list[int]) -> None:
    """Render and store the thumbnails among `indexes` that are not in S3 yet (once per image)."""
    missing = [i for i in indexes if not _exists(_thumb_key(version, i))]
    if not missing:
        return
    manifest = load_manifest(version.uri)
    with open_remote(version.uri + manifest["archive"]) as raw, zipfile.ZipFile(raw) as archive:
        for index in missing:
            image = manifest["images"][index]
            storage.put_bytes(
                _thumb_key(version, index), render(archive.read(image["path"]), image), "image/jpeg"
            )


# Label-free thumbnails known to be in S3 already (the prediction views' pages).
_PLAIN_STORED: set[str] = set()


def plain_thumbnail_uris(version: DatasetVersion, indexes: list[int]) -> list[str]:
    """`s3://` URIs of the label-free thumbnails of `indexes`, rendered first where missing.

    What is stored is learnt by listing the version's folder once (one request, not a HEAD per
    image); the ones rendered here are added to what this process knows."""
    keys = [_thumb_key(version, i, True) for i in indexes]
    if any(key not in _PLAIN_STORED for key in keys):
        prefix = storage.parse_uri(version.uri)[1] + storage.DATASET_PLAIN_THUMBS
        _PLAIN_STORED.update(storage.list_keys(prefix))
    todo = [i for i, key in zip(indexes, keys, strict=True) if key not in _PLAIN_STORED]
    if todo:
        _render_plain(version, todo)
        _PLAIN_STORED.update(_thumb_key(version, i, True) for i in todo)
    return [storage.uri(key) for key in keys]


def _render_plain(version: DatasetVersion, indexes: list[int]) -> None:
    manifest = load_manifest(version.uri)
    with open_remote(version.uri + manifest["archive"]) as raw, zipfile.ZipFile(raw) as archive:
        for index in indexes:
            data = archive.read(manifest["images"][index]["path"])
            storage.put_bytes(_thumb_key(version, index, True), render(data, {}), "image/jpeg")


def gallery_page(
    version: DatasetVersion,
    *,
    split: str | None = None,
    class_name: str | None = None,
    offset: int = 0,
    limit: int = 24,
) -> tuple[int, list[dict[str, Any]]]:
    """(matching count, one page of image records) with their thumbnails ready in S3."""
    if not 1 <= limit <= 100 or offset < 0:
        raise InvalidInput("limit must be 1..100 and offset >= 0")
    manifest = load_manifest(version.uri)
    matching = filter_images(manifest, split=split, class_name=class_name)
    page = matching[offset : offset + limit]
    ensure_thumbnails(version, page)
    classes = manifest["classes"]
    items = []
    for index in page:
        image = manifest["images"][index]
        items.append(
            {
                "index": index,
                "path": image["path"],
                "split": image["split"],
                "width": image["width"],
                "height": image["height"],
                "classes": [classes[c] for c in sorted(image_classes(image))],
                "num_objects": len(image["labels"]),
                "thumbnail_uri": storage.uri(_thumb_key(version, index)),
            }
        )
    return len(matching), items


def _image(version: DatasetVersion, index: int) -> dict[str, Any]:
    manifest = load_manifest(version.uri)
    if not 0 <= index < len(manifest["images"]):
        raise NotFound(f"Image {index} does not exist in version {version.version}")
    image: dict[str, Any] = manifest["images"][index]
    return image


def thumbnail_bytes(version: DatasetVersion, index: int) -> bytes:
    _image(version, index)
    ensure_thumbnails(version, [index])
    return storage.get_bytes(storage.uri(_thumb_key(version, index)))


def stream_image(version: DatasetVersion, index: int, chunk: int = 256 * 1024) -> tuple[str, Iterator[bytes]]:
    """(media type, chunks) of the full-size image, read from the archive in S3."""
    image = _image(version, index)
    manifest = load_manifest(version.uri)
    media = MEDIA_TYPES.get(posixpath.splitext(image["path"])[1].lower(), "application/octet-stream")

    def chunks() -> Iterator[bytes]:
        with (
            open_remote(version.uri + manifest["archive"]) as raw,
            zipfile.ZipFile(raw) as archive,
            archive.open(image["path"]) as entry,
        ):
            while block := entry.read(chunk):
                yield block

    return media, chunks()
