"""Statistics and the preview gallery: thumbnails rendered once into S3 with boxes drawn where
the labels say, paged and filtered by class and split; full-size images streamed from S3."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from services.domain.datasets.thumbnails import class_colour
from services.infra import storage
from tests.datasets.conftest import base, upload
from tests.datasets.factories import png, yolo_detect

pytestmark = [pytest.mark.datasets, pytest.mark.usefixtures("backend")]
GREY = (128, 128, 128)


def _close(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return max(abs(a - b) for a, b in zip(pixel[:3], colour, strict=True)) <= tolerance


@pytest.fixture(scope="module")
def boxes(client: TestClient) -> dict:
    entries = yolo_detect(
        {
            "train/a": ["0 0.25 0.5 0.3 0.4", "1 0.75 0.5 0.2 0.6"],
            "train/b": ["1 0.5 0.5 0.5 0.5"],
            "train/c": [],
            "val/d": ["0 0.5 0.5 0.9 0.9", "0 0.2 0.2 0.1 0.1", "1 0.7 0.7 0.1 0.1"],
        },
        names=("red", "green"),
    )
    entries["images/train/a.png"] = png(512, 256, GREY, seed=1)  # thumbnail 256x128
    response = upload(client, entries, "boxes")
    assert response.status_code == 201, response.text
    return response.json()


def test_statistics(client: TestClient, boxes: dict) -> None:
    url = f"{base(client, boxes['dataset_id'])}/versions/1/stats"
    stats = client.get(url).json()
    assert stats["split_counts"] == {"train": 3, "val": 1}
    assert stats["instances_per_class"] == {"train": {"red": 1, "green": 2}, "val": {"red": 2, "green": 1}}
    assert stats["images_per_class"] == {"train": {"red": 1, "green": 2}, "val": {"red": 1, "green": 1}}
    assert stats["objects_per_image"] == {"train": {"0": 1, "1": 1, "2": 1}, "val": {"3": 1}}
    assert stats["background_images"] == 1
    sizes = {(s["width"], s["height"]): s["count"] for s in stats["image_sizes"]}
    assert sizes == {(512, 256): 1, (64, 64): 3}
    assert stats["width"]["max"] == 512 and stats["height"]["min"] == 64
    assert stats["class_colours"] == ["#e6194b", "#3cb44b"]


def test_thumbnail_draws_boxes_where_the_labels_say(client: TestClient, boxes: dict) -> None:
    url = f"{base(client, boxes['dataset_id'])}/versions/1/images"
    page = client.get(url, params={"split": "train", "class_name": "red"}).json()
    assert page["count"] == 1 and page["data"][0]["path"] == "images/train/a.png"
    thumb = client.get(page["data"][0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(thumb.content)).convert("RGB")
    assert img.size == (256, 128)
    red, green = class_colour(0), class_colour(1)
    # red box: x 0.1..0.4 -> 25.6..102.4, y 0.3..0.7 -> 38.4..89.6 on the 256x128 thumbnail
    assert _close(img.getpixel((26, 64)), red)  # left edge
    assert _close(img.getpixel((101, 64)), red)  # right edge
    assert _close(img.getpixel((64, 39)), red)  # top edge
    assert _close(img.getpixel((64, 64)), GREY)  # inside: untouched
    # green box: x 0.65..0.85 -> 166.4..217.6, y 0.2..0.8 -> 25.6..102.4
    assert _close(img.getpixel((167, 64)), green)
    assert _close(img.getpixel((190, 26)), green)
    assert _close(img.getpixel((140, 64)), GREY)  # between the boxes
    assert _close(img.getpixel((230, 64)), GREY)  # right of the green box


def test_thumbnails_are_rendered_once_and_stored(client: TestClient, boxes: dict) -> None:
    url = f"{base(client, boxes['dataset_id'])}/versions/1/images"
    prefix = boxes["uri"].split("/", 3)[3] + "thumbs/"
    client.get(url, params={"limit": 2})
    first = {
        k: storage.s3_client().head_object(Bucket=storage.bucket(), Key=k)["ETag"]
        for k in storage.list_keys(prefix)
    }
    assert len(first) >= 2
    client.get(url, params={"limit": 4})
    after = {
        k: storage.s3_client().head_object(Bucket=storage.bucket(), Key=k)["ETag"]
        for k in storage.list_keys(prefix)
    }
    assert len(after) == 4 and all(after[k] == etag for k, etag in first.items())


def test_gallery_paging_and_filters(client: TestClient, boxes: dict) -> None:
    url = f"{base(client, boxes['dataset_id'])}/versions/1/images"
    everything = client.get(url).json()
    assert everything["count"] == 4 and [i["index"] for i in everything["data"]] == [0, 1, 2, 3]
    second = client.get(url, params={"offset": 1, "limit": 2}).json()
    assert [i["index"] for i in second["data"]] == [1, 2] and second["count"] == 4
    green = client.get(url, params={"class_name": "green"}).json()
    assert [i["path"] for i in green["data"]] == [
        "images/train/a.png",
        "images/train/b.png",
        "images/val/d.png",
    ]
    val = client.get(url, params={"split": "val"}).json()
    assert [i["classes"] for i in val["data"]] == [["red", "green"]] and val["data"][0]["num_objects"] == 3
    bad = client.get(url, params={"class_name": "blue"})
    assert bad.status_code == 422 and "Unknown class 'blue'" in bad.json()["detail"]
    assert client.get(url, params={"split": "holdout"}).status_code == 422


def test_full_size_image_is_streamed_from_the_archive(client: TestClient, boxes: dict) -> None:
    url = f"{base(client, boxes['dataset_id'])}/versions/1/images"
    response = client.get(f"{url}/0")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content == png(512, 256, GREY, seed=1)
    assert client.get(f"{url}/99").status_code == 404
    assert client.get(f"{base(client, 424242)}/versions/1/images/0").status_code == 404


def test_segmentation_polygons_are_drawn(client: TestClient) -> None:
    from tests.datasets.factories import yolo_segment

    entries = yolo_segment(2)
    entries["images/train/0.png"] = png(200, 200, GREY, seed=1)
    response = upload(client, entries, "polys")
    assert response.status_code == 201, response.text
    url = f"{base(client, response.json()['dataset_id'])}/versions/1/images/0/thumbnail"
    img = Image.open(io.BytesIO(client.get(url).content)).convert("RGB")
    # polygon (0.1,0.1) (0.5,0.1) (0.5,0.6) (0.1,0.6) on 200x200: outline at x=20, fill inside
    assert _close(img.getpixel((21, 60)), class_colour(0))
    inside = img.getpixel((60, 60))
    assert not _close(inside, GREY, 10) and inside[0] > inside[1]  # tinted towards the class colour
    assert _close(img.getpixel((150, 150)), GREY)
