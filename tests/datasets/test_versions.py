"""A new upload and a class rename each make a new version; earlier versions never change, bad
input writes nothing, and a job can be created on every kind of version."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.domain.datasets import ingest
from services.domain.models import DatasetVersion
from services.errors import Conflict
from services.infra import storage
from services.infra.db import session_scope
from services.runtime import sample_data
from tests.datasets.conftest import base, state, upload
from tests.datasets.factories import digits_imagefolder, png, yolo_detect, zip_bytes

pytestmark = [pytest.mark.datasets, pytest.mark.usefixtures("backend")]


def _snapshot(version: dict[str, Any]) -> dict[str, bytes]:
    """Every object of a version, byte for byte (thumbnails excluded: they are a cache)."""
    prefix = storage.parse_uri(version["uri"])[1]
    return {
        k: storage.get_bytes(storage.uri(k))
        for k in storage.list_keys(prefix)
        if not k[len(prefix) :].startswith(storage.DATASET_THUMBS)
    }


def _new_version(client: TestClient, dataset_id: int, data: bytes | dict, name: str = "more.zip") -> Any:
    body = data if isinstance(data, bytes) else zip_bytes(data)
    return client.post(
        f"{base(client, dataset_id)}/versions", files={"file": (name, body, "application/zip")}
    )


def _manifest(version: dict[str, Any]) -> dict[str, Any]:
    return json.loads(storage.get_bytes(version["uri"] + storage.DATASET_MANIFEST))


def test_a_new_upload_makes_the_next_version(client: TestClient) -> None:
    v1 = upload(client, sample_data.yolo_zip(train=6, val=2, seed=1), "grows").json()
    url = base(client, v1["dataset_id"])
    before = _snapshot(v1)

    response = _new_version(client, v1["dataset_id"], sample_data.yolo_zip(train=10, val=3, seed=2))
    assert response.status_code == 201, response.text
    v2 = response.json()
    assert (v2["version"], v2["dataset_id"], v2["name"], v2["split_method"]) == (
        2,
        v1["dataset_id"],
        "grows",
        "upload",
    )
    assert v2["num_images"] == 13 and v2["split_counts"] == {"train": 10, "val": 3}
    assert v2["report"]["format"] == "yolo" and v2["report"]["counts"]["images"] == 13
    assert v2["uri"] != v1["uri"] and v2["uri"].endswith("/v2/")
    assert len(_manifest(v2)["images"]) == 13
    assert client.get(f"{url}/versions/2/report").json()["counts"]["images"] == 13

    # v1: same objects, same bytes, same row
    assert _snapshot(v1) == before
    assert client.get(f"{url}/versions/1").json()["num_images"] == 8
    assert [v["version"] for v in client.get(f"{url}/versions").json()] == [2, 1]

    # "keep" restores the split of the upload a version comes from (v2's, not v1's)
    shuffled = client.post(f"{url}/split", json={"method": "random", "seed": 3, "from_version": 2}).json()
    kept = client.post(f"{url}/split", json={"method": "keep", "from_version": shuffled["version"]})
    assert kept.status_code == 201, kept.text
    assert kept.json()["split_counts"] == {"train": 10, "val": 3}

    # a third upload after splits takes the next free number
    v5 = _new_version(client, v1["dataset_id"], sample_data.yolo_zip(train=2, val=1, seed=4)).json()
    assert v5["version"] == 5
    assert _snapshot(v1) == before


BAD_NEW_VERSIONS: dict[str, tuple[bytes | dict, str]] = {
    "corrupt image": (
        yolo_detect({"train/0": ["0 0.5 0.5 0.2 0.2"], "val/1": ["1 0.5 0.5 0.2 0.2"]})
        | {"images/train/0.png": b"\x89PNG junk"},
        "corrupt",
    ),
    "empty zip": (zip_bytes({}), "empty"),
    "path traversal": (
        yolo_detect({"train/0": ["0 0.5 0.5 0.2 0.2"]}) | {"../evil.png": png()},
        "path traversal",
    ),
    "not a zip": (b"plain text", "not a zip archive"),
    "another task": (digits_imagefolder(per_class=3), "upload it as a new dataset"),
}


def test_bad_new_uploads_are_refused_and_write_nothing(client: TestClient) -> None:
    v1 = upload(client, sample_data.yolo_zip(train=3, val=1), "guarded").json()
    before = state()
    v1_objects = _snapshot(v1)
    for case, (data, expected) in BAD_NEW_VERSIONS.items():
        response = _new_version(client, v1["dataset_id"], data)
        assert response.status_code == 422, (case, response.text)
        body = response.json()
        text = body["detail"] + " ".join(p["message"] for p in body.get("problems", []))
        assert expected in text, (case, body)
        assert state() == before, case
    missing = _new_version(client, 999999, sample_data.yolo_zip(train=2, val=1))
    assert missing.status_code == 404
    assert state() == before
    assert _snapshot(v1) == v1_objects
    assert [v["version"] for v in client.get(f"{base(client, v1['dataset_id'])}/versions").json()] == [1]


def test_a_class_rename_makes_a_new_version(client: TestClient) -> None:
    v1 = upload(client, sample_data.yolo_zip(train=8, val=2, seed=6), "renamed").json()
    url = base(client, v1["dataset_id"])
    before = _snapshot(v1)
    m1 = _manifest(v1)

    response = client.post(f"{url}/rename-classes", json={"from_version": 1, "names": {"circle": " disc "}})
    assert response.status_code == 201, response.text
    v2 = response.json()
    assert (v2["version"], v2["parent_version_id"], v2["split_method"]) == (2, v1["id"], "rename")
    assert v2["classes"] == ["disc", "square"] and "circle -> disc" in v2["note"]
    assert v2["split_counts"] == v1["split_counts"] and v2["num_labels"] == v1["num_labels"]
    assert {s: counts["disc"] for s, counts in v2["class_counts"].items()} == {
        s: counts["circle"] for s, counts in v1["class_counts"].items()
    }
    m2 = _manifest(v2)
    assert m2["classes"] == ["disc", "square"]
    assert m2["images"] == m1["images"]  # ids unchanged, so labels, sizes, hashes and split are too
    assert storage.get_bytes(v2["uri"] + m2["archive"]) == storage.get_bytes(v1["uri"] + m1["archive"])
    stats = client.get(f"{url}/versions/2/stats").json()
    assert stats["classes"] == ["disc", "square"] and "disc" in stats["instances_per_class"]["train"]
    page = client.get(f"{url}/versions/2/images", params={"class_name": "disc", "limit": 100}).json()
    assert page["count"] == sum(c["disc"] for c in v2["class_counts"].values())
    assert client.get(f"{url}/versions/2/images", params={"class_name": "circle"}).status_code == 422

    # a swap is a valid rename; the latest version is used when from_version is omitted
    swapped = client.post(f"{url}/rename-classes", json={"names": {"disc": "square", "square": "disc"}})
    assert swapped.status_code == 201, swapped.text
    assert (swapped.json()["version"], swapped.json()["classes"]) == (3, ["square", "disc"])

    assert _snapshot(v1) == before
    assert client.get(f"{url}/versions/1").json()["classes"] == ["circle", "square"]
    assert [v["version"] for v in client.get(f"{url}/versions").json()] == [3, 2, 1]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ({"triangle": "tri"}, "unknown class(es) ['triangle']"),
        ({"circle": "square"}, "['square'] would name more than one class"),
        ({"circle": "blob", "square": "blob"}, "['blob'] would name more than one class"),
        ({"circle": "   "}, "new name(s) for ['circle'] are empty"),
        ({"circle": ""}, "are empty"),
        ({}, "give at least one class"),
        ({"circle": "circle"}, "nothing would change"),
        ({"circle": "x" * 201}, "longer than 200"),
    ],
)
def test_bad_renames_are_refused_and_write_nothing(
    client: TestClient, names: dict[str, str], message: str
) -> None:
    v1 = upload(client, sample_data.yolo_zip(train=3, val=1), "strict").json()
    v1_objects = _snapshot(v1)
    before = state()
    response = client.post(f"{base(client, v1['dataset_id'])}/rename-classes", json={"names": names})
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert state() == before
    assert _snapshot(v1) == v1_objects


def test_renames_of_missing_things_are_not_found(client: TestClient) -> None:
    v1 = upload(client, sample_data.yolo_zip(train=3, val=1), "missing").json()
    before = state()
    url = base(client, v1["dataset_id"])
    body = {"names": {"circle": "disc"}}
    assert client.post(f"{url}/rename-classes", json={**body, "from_version": 9}).status_code == 404
    assert client.post(f"{base(client, 999999)}/rename-classes", json=body).status_code == 404
    assert client.post(f"{url}/rename-classes", json={"names": ["circle"]}).status_code == 422
    assert state() == before


def test_a_writer_that_loses_the_race_for_a_version_number_deletes_nothing(client: TestClient) -> None:
    v1 = upload(client, sample_data.yolo_zip(train=3, val=1), "race").json()
    objects = _snapshot(v1)
    with session_scope() as session:
        clash = DatasetVersion(
            dataset_id=v1["dataset_id"], version=1, format="yolo", task="detect", uri=v1["uri"]
        )
        with pytest.raises(Conflict, match="try again"):
            ingest._write_version(session, clash, storage.parse_uri(v1["uri"])[1], [])
    assert _snapshot(v1) == objects


def test_a_version_whose_transaction_rolls_back_leaves_no_objects(client: TestClient) -> None:
    """The objects are written before the caller's commit (which carries the audit row too): a
    transaction that rolls back after the writes takes its objects with it."""
    import io

    before = state()
    with pytest.raises(RuntimeError, match="after the writes"), session_scope() as session:
        version, _report = ingest.ingest_zip(
            session,
            project_id=client.project_id,  # type: ignore[attr-defined]
            user_id=_creator(
                upload(client, sample_data.yolo_zip(train=2, val=1), "first").json()["dataset_id"]
            ),
            name="rolled back",
            fileobj=io.BytesIO(sample_data.yolo_zip(train=3, val=1)),
            filename="late.zip",
        )
        prefix = storage.parse_uri(version.uri)[1]
        assert list(storage.list_keys(prefix)), "the objects exist until the transaction ends"
        raise RuntimeError("something failed after the writes, before the commit")
    assert not list(storage.list_keys(prefix))
    datasets, versions, keys = state()
    assert (datasets, versions) == (before[0] + 1, before[1] + 1)  # only the "first" upload remains
    assert not [k for k in keys if k.startswith(prefix)]


def test_a_job_can_be_created_on_every_kind_of_version(client: TestClient) -> None:
    from services.domain import jobs
    from services.domain.models import Job, User

    v1 = upload(client, sample_data.yolo_zip(train=6, val=2, seed=8), "trainable").json()
    url = base(client, v1["dataset_id"])
    made = [
        v1,
        _new_version(client, v1["dataset_id"], sample_data.yolo_zip(train=5, val=2, seed=9)).json(),
        client.post(f"{url}/split", json={"train": 0.6, "val": 0.2, "test": 0.2}).json(),
        client.post(f"{url}/rename-classes", json={"names": {"square": "box"}}).json(),
    ]
    assert [v["version"] for v in made] == [1, 2, 3, 4]
    creator = _creator(v1["dataset_id"])
    with session_scope() as session:
        user = session.get(User, creator)
        for version in made:
            job = jobs.create_job(
                session,
                project_id=client.project_id,  # type: ignore[attr-defined]
                user=user,
                dataset_version_id=version["id"],
                hyperparameters={"epochs": 1},
            )
            assert session.get(Job, job.id).dataset_version_id == version["id"]
            assert f"dataset v{version['version']}" in job.name
        session.rollback()


def _creator(dataset_id: int) -> int:
    from services.domain.models import Dataset

    with session_scope() as session:
        return session.get(Dataset, dataset_id).created_by
