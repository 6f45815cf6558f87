"""Each supported layout is detected, named in the result and converted to the manifest shape
of docs/trainer-protocol.md (the trainer's contract): task, classes, images with labels."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from services.infra import storage
from services.runtime import sample_data
from tests.datasets.conftest import upload
from tests.datasets.factories import coco, digits_imagefolder, png, yolo_segment

pytestmark = [pytest.mark.datasets, pytest.mark.usefixtures("backend")]


def _manifest(body: dict) -> dict:
    manifest = json.loads(storage.get_bytes(body["uri"] + "manifest.json"))
    assert set(manifest) == {"format", "task", "classes", "archive", "images"}
    assert storage.exists(body["uri"] + manifest["archive"])
    for image in manifest["images"]:
        assert image["split"] in ("train", "val", "test")
        assert image["width"] > 0 and image["height"] > 0 and len(image["sha256"]) == 64
    return manifest


def test_yolo_detection(client: TestClient) -> None:
    response = upload(client, sample_data.yolo_zip(train=5, val=3), "shapes")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["format"], body["task"]) == ("yolo", "detect")
    assert body["report"]["format"] == "yolo" and body["report"]["counts"]["images"] == 8
    assert body["split_counts"] == {"train": 5, "val": 3}
    manifest = _manifest(body)
    assert all(len(row) == 5 for image in manifest["images"] for row in image["labels"])
    assert sum(body["class_counts"]["train"].values()) >= 5


def test_yolo_segmentation_polygons(client: TestClient) -> None:
    response = upload(client, yolo_segment(4), "blobs")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["format"], body["task"], body["classes"]) == ("yolo", "segment", ["blob", "ring"])
    manifest = _manifest(body)
    first = manifest["images"][0]
    assert first["labels"] == [[0, 0.1, 0.1, 0.5, 0.1, 0.5, 0.6, 0.1, 0.6]]


def test_roboflow_style_yolo_under_a_wrapping_folder(client: TestClient) -> None:
    entries = {
        "export/data.yaml": "names: [a, b]\n",
        "export/train/images/x.png": sample_data_png(1),
        "export/train/labels/x.txt": "1 0.5 0.5 0.5 0.5\n",
        "export/valid/images/y.png": sample_data_png(2),
        "export/valid/labels/y.txt": "0 0.5 0.5 0.5 0.5\n",
    }
    response = upload(client, entries, "robo")
    assert response.status_code == 201, response.text
    manifest = _manifest(response.json())
    assert {i["path"]: i["split"] for i in manifest["images"]} == {
        "export/train/images/x.png": "train",
        "export/valid/images/y.png": "val",
    }


def sample_data_png(seed: int) -> bytes:
    return png(seed=seed)


def test_coco_detection_boxes_are_normalised(client: TestClient) -> None:
    entries, _doc = coco(images=4, size=(80, 60))
    response = upload(client, entries, "pets")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["format"], body["task"], body["classes"]) == ("coco", "detect", ["cat", "dog"])
    assert body["split_counts"] == {"train": 4}  # instances_train.json names the split
    manifest = _manifest(body)
    by_path = {i["path"]: i for i in manifest["images"]}
    # bbox [10, 5, 40, 30] on 80x60 -> centre (30, 20), size 40x30
    assert by_path["images/1.png"]["labels"] == [[1, 30 / 80, 20 / 60, 40 / 80, 30 / 60]]
    assert by_path["images/0.png"]["labels"][0][0] == 0


def test_real_digits_imagefolder_classification(client: TestClient) -> None:
    response = upload(client, digits_imagefolder(per_class=8), "digits")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["format"], body["task"]) == ("imagefolder", "classify")
    assert body["classes"] == [str(d) for d in range(10)]
    assert body["split_counts"] == {"train": 60, "val": 20}
    manifest = _manifest(body)
    for image in manifest["images"]:
        assert image["labels"] == [] and isinstance(image["label"], int)
        assert manifest["classes"][image["label"]] == image["path"].split("/")[-2]
    assert body["class_counts"]["val"] == {str(d): 2 for d in range(10)}


def test_imagefolder_without_split_folders_is_all_train(client: TestClient) -> None:
    entries = digits_imagefolder(per_class=3, with_splits=False)
    response = upload(client, entries, "flat")
    assert response.status_code == 201, response.text
    assert response.json()["split_counts"] == {"train": 30}


def test_coco_split_per_annotation_file(client: TestClient) -> None:
    train, doc = coco(images=3)
    val_doc = {**doc, "images": [{"id": 1, "file_name": "v.png", "width": 80, "height": 60}]}
    val_doc["annotations"] = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 80, 60]}]
    entries = {
        **train,
        "annotations/instances_val.json": json.dumps(val_doc),
        "images/v.png": png(80, 60, seed=9),
    }
    response = upload(client, entries, "pets2")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["split_counts"] == {"train": 3, "val": 1}
    manifest = _manifest(body)
    assert [i["labels"] for i in manifest["images"] if i["split"] == "val"] == [[[1, 0.5, 0.5, 1.0, 1.0]]]
