"""Versions never change; a split makes a new version; stratification puts every class with at
least three images into every split."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from services.domain.datasets.splits import image_classes, stratified_split
from services.errors import InvalidInput
from services.infra import storage
from services.runtime import sample_data
from tests.datasets.conftest import base, state, upload
from tests.datasets.factories import digits_imagefolder

pytestmark = pytest.mark.datasets
RATIOS = {"train": 0.7, "val": 0.2, "test": 0.1}


def _detection_images(rng: random.Random, classes: int, count: int) -> list[dict]:
    """Skewed class frequencies: class c appears with weight 1/(c+1)^2, often with others."""
    weights = [1 / (c + 1) ** 2 for c in range(classes)]
    images = []
    for _ in range(count):
        n = rng.randint(0, 4)
        labels = [[rng.choices(range(classes), weights)[0], 0.5, 0.5, 0.1, 0.1] for _ in range(n)]
        images.append({"labels": labels, "split": "train"})
    return images


@pytest.mark.parametrize("seed", range(25))
def test_every_class_with_three_images_is_in_every_split(seed: int) -> None:
    rng = random.Random(seed)
    images = _detection_images(rng, classes=rng.randint(2, 12), count=rng.randint(10, 120))
    splits = stratified_split(images, ratios=RATIOS, seed=seed)
    per_class = Counter(c for image in images for c in image_classes(image))
    for cls, n in per_class.items():
        if n >= 3:
            present = {s for image, s in zip(images, splits, strict=True) if cls in image_classes(image)}
            assert present == {"train", "val", "test"}, (cls, n)
    if len(images) >= 50:  # tiny sets trade ratio accuracy for class coverage
        assert abs(Counter(splits)["train"] / len(images) - 0.7) < 0.15


def test_rare_class_hidden_behind_rarer_ones_still_reaches_every_split() -> None:
    # class 1 (3 images) always shares its image with class 2 (rarest, 3 images) -> repair pass needed
    images = [{"labels": [[0, 0.5, 0.5, 0.1, 0.1]]} for _ in range(30)]
    images += [{"labels": [[1, 0.5, 0.5, 0.1, 0.1], [2, 0.5, 0.5, 0.1, 0.1]]} for _ in range(3)]
    images += [{"labels": [[1, 0.5, 0.5, 0.1, 0.1]]} for _ in range(1)]
    splits = stratified_split(images, ratios=RATIOS, seed=3)
    for cls in (0, 1, 2):
        assert {s for i, s in zip(images, splits, strict=True) if cls in image_classes(i)} == {
            "train",
            "val",
            "test",
        }


def test_classification_split_is_stratified_and_seeded() -> None:
    images = [{"label": c, "labels": []} for c in range(5) for _ in range(10)]
    first = stratified_split(images, ratios=RATIOS, seed=1)
    assert first == stratified_split(images, ratios=RATIOS, seed=1)
    assert first != stratified_split(images, ratios=RATIOS, seed=2)
    for c in range(5):
        assert Counter(s for i, s in zip(images, first, strict=True) if i["label"] == c) == {
            "train": 7,
            "val": 2,
            "test": 1,
        }


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ({"train": 0.5, "val": 0.2}, "add up to 1"),
        ({"train": 0.0, "val": 1.0}, "train ratio"),
        ({"train": 1.2, "val": -0.2}, ">= 0"),
        ({"train": 0.8, "holdout": 0.2}, "Unknown split"),
    ],
)
def test_bad_ratios_are_refused(ratios: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        stratified_split([{"label": 0, "labels": []}], ratios=ratios, seed=0)


@pytest.mark.usefixtures("backend")
def test_split_makes_a_new_version_and_the_old_one_never_changes(client: TestClient) -> None:
    v1 = upload(client, sample_data.yolo_zip(train=20, val=4, seed=5), "shapes").json()
    url = base(client, v1["dataset_id"])
    v1_objects = {k: storage.get_bytes(storage.uri(k)) for k in storage.list_keys(v1["uri"].split("/", 3)[3])}

    response = client.post(f"{url}/split", json={"train": 0.6, "val": 0.2, "test": 0.2, "seed": 7})
    assert response.status_code == 201, response.text
    v2 = response.json()
    assert (v2["version"], v2["parent_version_id"], v2["split_method"], v2["split_seed"]) == (
        2,
        v1["id"],
        "stratified",
        7,
    )
    assert sum(v2["split_counts"].values()) == 24 and min(v2["split_counts"].values()) >= 4
    assert set(v2["class_counts"]) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        assert all(v2["class_counts"][split][c] > 0 for c in ("circle", "square"))
    m1 = json.loads(storage.get_bytes(v1["uri"] + "manifest.json"))
    m2 = json.loads(storage.get_bytes(v2["uri"] + "manifest.json"))
    assert [i["path"] for i in m1["images"]] == [i["path"] for i in m2["images"]]
    assert [i["labels"] for i in m1["images"]] == [i["labels"] for i in m2["images"]]
    assert storage.get_bytes(v2["uri"] + m2["archive"]) == storage.get_bytes(v1["uri"] + m1["archive"])

    again = client.post(f"{url}/split", json={"method": "keep"}).json()
    assert again["version"] == 3 and again["split_counts"] == {"train": 20, "val": 4}

    # v1 is byte-for-byte what it was; listing shows all three, newest first
    assert {
        k: storage.get_bytes(storage.uri(k)) for k in storage.list_keys(v1["uri"].split("/", 3)[3])
    } == v1_objects
    listed = client.get(f"{url}/versions").json()
    assert [v["version"] for v in listed] == [3, 2, 1]
    assert client.get(f"{url}/versions/1").json()["split_counts"] == {"train": 20, "val": 4}


@pytest.mark.usefixtures("backend")
def test_classification_split_through_the_api(client: TestClient) -> None:
    v1 = upload(client, digits_imagefolder(per_class=6, with_splits=False), "digits").json()
    response = client.post(
        f"{base(client, v1['dataset_id'])}/split", json={"train": 0.5, "val": 0.25, "test": 0.25}
    )
    assert response.status_code == 201, response.text
    counts = response.json()["class_counts"]
    assert all(counts[s][str(d)] >= 1 for s in ("train", "val", "test") for d in range(10))


@pytest.mark.usefixtures("backend")
def test_bad_split_requests_write_nothing(client: TestClient) -> None:
    v1 = upload(client, sample_data.yolo_zip(train=3, val=1), "small").json()
    url = base(client, v1["dataset_id"])
    before = state()
    bad = client.post(f"{url}/split", json={"train": 0.5, "val": 0.1, "test": 0.1})
    assert bad.status_code == 422 and "add up to 1" in bad.json()["detail"]
    assert client.post(f"{url}/split", json={"from_version": 9}).status_code == 404
    assert client.post(f"{base(client, 99999)}/split", json={}).status_code == 404
    assert state() == before
