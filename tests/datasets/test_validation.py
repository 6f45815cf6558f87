"""A corpus of bad archives: each is refused with a message saying what to fix, every problem
is listed as (file, line, message), and nothing is left behind — no rows, no S3 objects."""

from __future__ import annotations

import io
import json
import struct
import zipfile

import pytest
from fastapi.testclient import TestClient

from services.domain.datasets import DatasetRejected, read_dataset_archive
from services.domain.datasets.archive import Limits
from tests.datasets.conftest import state, upload
from tests.datasets.factories import coco, png, yolo_detect, yolo_segment, zip_bytes

pytestmark = [pytest.mark.datasets, pytest.mark.usefixtures("backend")]

GOOD = yolo_detect({"train/0": ["0 0.5 0.5 0.2 0.2"], "val/1": ["1 0.5 0.5 0.2 0.2"]})


def _with(base: dict, **changes: bytes | str | None) -> dict:
    entries = {**base}
    for name, data in changes.items():
        name = name.replace("__", "/").replace("_dot_", ".")
        if data is None:
            entries.pop(name, None)
        else:
            entries[name] = data
    return entries


def _symlink_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in GOOD.items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("images/train/link.png")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    return out.getvalue()


def _forged_size_zip() -> bytes:
    """A tiny stored entry whose central directory claims 4 GB: must be refused unextracted."""
    data = bytearray(
        zip_bytes({"data.yaml": "names: [a]\n", "images/a.png": b"0123456789"}, zipfile.ZIP_STORED)
    )
    central = data.rfind(b"PK\x01\x02")  # the last central directory header: images/a.png
    struct.pack_into("<I", data, central + 24, 0xFFFFFFF0)  # uncompressed size
    return bytes(data)


def _coco_with(mutate) -> dict:  # type: ignore[no-untyped-def]
    entries, doc = coco(images=3)
    mutate(doc, entries)
    entries["annotations/instances_train.json"] = json.dumps(doc)
    return entries


def _truncated_png() -> bytes:
    data = png(64, 64, seed=3)
    return data[: len(data) // 2]


# case -> (archive, text expected in the detail or a problem, file named in a problem or None)
CORPUS: dict[str, tuple[bytes | dict, str, str | None]] = {
    "not a zip": (b"plain text", "not a zip archive", None),
    "empty zip": (zip_bytes({}), "empty", None),
    "only archiver litter": (zip_bytes({"__MACOSX/._a.png": b"x", ".DS_Store": b"x"}), "empty", None),
    "parent path": (_with(GOOD, **{"../evil.png": png()}), "path traversal", "../evil.png"),
    "absolute path": (zip_bytes({**GOOD, "/etc/cron.d/x": b"x"}), "path traversal", "/etc/cron.d/x"),
    "symlink": (_symlink_zip(), "symbolic links", "images/train/link.png"),
    "zip bomb ratio": (zip_bytes({**GOOD, "images/train/big.png": b"\0" * (40 * 1024**2)}), "zip bomb", None),
    "forged sizes": (_forged_size_zip(), "zip bomb", None),
    "unknown layout": (zip_bytes({"notes.txt": b"hello"}), "Could not recognise the dataset layout", None),
    "no data.yaml": (_with(GOOD, data_dot_yaml=None), "data.yaml", None),
    "yaml without names": (_with(GOOD, data_dot_yaml="nc: 2\n"), "names", None),
    "broken yaml": (_with(GOOD, data_dot_yaml="names: [a, b\n"), "not valid YAML", None),
    "corrupt image": (_with(GOOD, images__train__0_dot_png=b"\x89PNG junk"), "corrupt", "images/train/0.png"),
    "truncated image": (
        _with(GOOD, images__train__0_dot_png=_truncated_png()),
        "corrupt",
        "images/train/0.png",
    ),
    "non-image in images/": (_with(GOOD, images__train__notes_dot_txt="hi"), "not an image", None),
    "class id out of range": (
        _with(GOOD, labels__train__0_dot_txt="5 0.5 0.5 0.1 0.1\n"),
        "out of range",
        None,
    ),
    "box outside image": (_with(GOOD, labels__train__0_dot_txt="0 0.9 0.5 0.4 0.2\n"), "outside", None),
    "zero-size box": (_with(GOOD, labels__train__0_dot_txt="0 0.5 0.5 0 0.2\n"), "positive", None),
    "short row": (_with(GOOD, labels__train__0_dot_txt="0 0.5 0.5\n"), "expected 5 values", None),
    "not numbers": (_with(GOOD, labels__train__0_dot_txt="0 a b c d\n"), "must be numbers", None),
    "polygon with two points": (
        _with(
            yolo_segment(2), labels__train__0_dot_txt="0 0.1 0.1 0.5 0.5 0.2 0.2 0.3 0.3\n1 0.1 0.1 0.2 0.2\n"
        ),
        "polygon",
        "labels/train/0.txt",
    ),
    "coco annotation for unknown image id": (
        _coco_with(
            lambda d, e: d["annotations"].append(
                {"id": 99, "image_id": 555, "category_id": 3, "bbox": [1, 1, 5, 5]}
            )
        ),
        "image_id 555 is not in 'images'",
        "annotations/instances_train.json",
    ),
    "coco annotation for image missing from zip": (
        _coco_with(lambda d, e: e.pop("images/1.png")),
        "which is not in the archive",
        "annotations/instances_train.json",
    ),
    "coco unknown category": (
        _coco_with(lambda d, e: d["annotations"][0].update(category_id=42)),
        "category_id 42",
        None,
    ),
    "coco box outside": (
        _coco_with(lambda d, e: d["annotations"][0].update(bbox=[70, 5, 40, 30])),
        "outside",
        None,
    ),
    "coco negative size": (
        _coco_with(lambda d, e: d["annotations"][0].update(bbox=[1, 1, -4, 3])),
        "positive",
        None,
    ),
    "coco broken json": (zip_bytes({"a.json": "{oops", "images/a.png": png()}), "not valid JSON", "a.json"),
    "json that is not coco": (
        zip_bytes({"a.json": "{}", "images/a.png": png()}),
        "not a COCO annotation file",
        None,
    ),
    "imagefolder non-image": (
        zip_bytes({"cat/1.png": png(seed=1), "dog/2.png": png(seed=2), "dog/readme.md": b"x"}),
        "not an image",
        "dog/readme.md",
    ),
    "imagefolder one class": (
        zip_bytes({"x/cat/1.png": png(seed=1), "x/cat/2.png": png(seed=2)}),
        "at least two",
        None,
    ),
}


@pytest.mark.parametrize("case", list(CORPUS))
def test_bad_archive_is_refused_with_every_problem_and_leaves_nothing(client: TestClient, case: str) -> None:
    data, expected, file = CORPUS[case]
    before = state()
    response = upload(client, data, "bad")
    assert response.status_code == 422, response.text
    body = response.json()
    texts = [body["detail"]] + [p["message"] for p in body["problems"]]
    assert any(expected in t for t in texts), body
    assert all(set(p) == {"file", "line", "message"} for p in body["problems"])
    if file is not None:
        assert file in [p["file"] for p in body["problems"]], body["problems"]
    assert state() == before


def test_a_corrupt_image_s_message_names_the_file_not_a_python_object(client: TestClient) -> None:
    response = upload(client, _with(GOOD, images__train__0_dot_png=b"not an image at all"), "corrupt")
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("The dataset has 1 problem to fix: images/train/0.png")
    (problem,) = response.json()["problems"]
    assert problem["file"] == "images/train/0.png"
    assert "cannot identify image file 'images/train/0.png'" in problem["message"], problem
    assert "BytesIO" not in response.text and " at 0x" not in response.text


def test_every_problem_is_reported_with_file_and_line(client: TestClient) -> None:
    entries = _with(
        GOOD,
        labels__train__0_dot_txt="0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n\n0 0.5 0.5 -1 0.2\n",
        images__val__1_dot_png=b"not an image at all",
        images__val__x_dot_gif_dot_txt="?",
    )
    before = state()
    response = upload(client, entries, "many")
    assert response.status_code == 422
    body = response.json()
    rows = {(p["file"], p["line"], p["message"].split(" (")[0]) for p in body["problems"]}
    assert ("labels/train/0.txt", 2, "class id 7 is out of range 0..1") in rows
    assert ("labels/train/0.txt", 4, "box width and height must be positive") in rows
    assert ("images/val/1.png", None, "corrupt or unreadable image") in rows
    assert not any("object at 0x" in p["message"] for p in body["problems"]), "no Python reprs for users"
    assert any(
        p["file"] == "images/val/x.gif.txt" and "not an image" in p["message"] for p in body["problems"]
    )
    assert body["problem_count"] == 4 == len(body["problems"])
    assert body["report"]["counts"]["errors"] == 4
    assert state() == before


def test_warnings_keep_the_dataset_and_are_listed(client: TestClient) -> None:
    entries = _with(
        GOOD,
        labels__train__orphan_dot_txt="0 0.5 0.5 0.1 0.1\n",  # label without an image
        images__train__bg_dot_png=png(seed=40),  # image without a label: background
        images__val__copy_dot_png=GOOD["images/train/0.png"],  # duplicate of images/train/0.png
        README_dot_md="about",
    )
    response = upload(client, entries, "warned")
    assert response.status_code == 201, response.text
    body = response.json()
    warnings = {(w["file"], w["message"].split(":")[0]) for w in body["report"]["warnings"]}
    assert ("labels/train/orphan.txt", "label file without an image") in warnings
    assert ("images/train/bg.png", "no label file") in warnings
    assert ("images/val/copy.png", "duplicate of images/train/0.png (same sha256)") in warnings
    assert ("README.md", "not part of the YOLO layout (images/, labels/, data.yaml)") in warnings
    assert body["num_images"] == 3  # the duplicate is dropped, the background image kept
    assert body["report"]["counts"]["background"] == 1 and body["report"]["counts"]["duplicates"] == 1
    assert body["num_warnings"] == len(body["report"]["warnings"]) == 4


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (Limits(max_files=3), "entries; the limit is 3"),
        (Limits(max_uncompressed_bytes=100), "the limit is 100 bytes"),
        (Limits(max_entry_bytes=100), "larger than the 100 byte limit"),
    ],
)
def test_archive_limits_are_checked_before_extracting(limits: Limits, expected: str) -> None:
    with pytest.raises(DatasetRejected) as caught:
        read_dataset_archive(io.BytesIO(zip_bytes(GOOD)), limits)
    assert expected in str(caught.value)


def test_a_storage_failure_midway_leaves_nothing(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The archive is already in S3 when writing the manifest fails: it must be removed again."""
    from services.infra import storage

    real_put = storage.put_bytes

    def failing_put(key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        if key.endswith("manifest.json"):
            raise storage.StorageError("injected failure")
        return real_put(key, data, content_type)

    monkeypatch.setattr(storage, "put_bytes", failing_put)
    before = state()
    with pytest.raises(storage.StorageError):
        upload(client, GOOD, "fails")
    assert state() == before
