"""`GET /api/v1/projects/{p}/predictions/compare`: the compare-predictions page's data over REST,
through the same action as the page (services.actions.predictions.compare). In-process API on
real S3, Redis and SQLite; the jobs are written straight in with known predictions (no training).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.runtime import sample_data
from tests.security.conftest import Cast, make_project, new_user
from tests.utils.predictions import succeeded_job, truth_doc, version_manifest

pytestmark = [pytest.mark.sweeps, pytest.mark.usefixtures("backend")]

URL = "/api/v1/projects/{}/predictions/compare"
VAL_IMAGES = 6


@dataclass
class World:
    client: TestClient
    cast: Cast
    perfect: int  # finds every object
    blind: int  # misses every object on every second val image (0, 2, 4)
    queued: int  # not finished: nothing to compare
    elsewhere: int  # a succeeded job of another project
    val_paths: list[str]

    def get(self, part: str, **params: Any) -> httpx.Response:
        return self.client.get(
            URL.format(self.cast.project_id), params=params, headers=self.cast.bearer(part)
        )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    from app.api.main import api
    from services.domain import tokens
    from services.domain.models import User
    from services.infra.db import session_scope

    cast = Cast()
    for part in ("owner", "admin", "member", "viewer", "outsider"):
        cast.users[part], cast.names[part] = new_user(prefix=part[:5])
    with session_scope() as session:
        for part, user_id in cast.users.items():
            _row, secret = tokens.create_personal_token(
                session, user=session.get(User, user_id), name="t", expires_in_days=1
            )
            cast.personal_tokens[part] = secret
    cast.project_id = make_project(cast)
    other = make_project(cast, name="other")
    with TestClient(api) as client:
        data = sample_data.yolo_zip(train=2, val=VAL_IMAGES, size=64, seed=3)
        uploaded = client.post(
            f"/api/v1/projects/{cast.project_id}/datasets",
            data={"name": "shapes"},
            files={"file": ("shapes.zip", data, "application/zip")},
            headers=cast.bearer("owner"),
        )
        assert uploaded.status_code == 201, uploaded.text
        version_id = uploaded.json()["id"]
        manifest = version_manifest(version_id)
        owner = cast.users["owner"]
        on = {"project_id": cast.project_id, "version_id": version_id, "user_id": owner}
        yield World(
            client=client,
            cast=cast,
            perfect=succeeded_job(**on, doc=truth_doc(manifest)),
            blind=succeeded_job(**on, doc=truth_doc(manifest, miss_every=2)),
            queued=succeeded_job(**on, doc=None, state="queued"),
            elsewhere=succeeded_job(
                project_id=other, version_id=version_id, user_id=owner, doc=truth_doc(manifest)
            ),
            val_paths=[i["path"] for i in manifest["images"] if i["split"] == "val"],
        )


def test_a_viewer_reads_the_same_page_the_browser_shows(world: World) -> None:
    from services.domain import tokens
    from services.domain.models import User
    from services.infra.db import session_scope
    from state.predictions_state import load_page

    response = world.get("viewer", jobs=f"{world.perfect},{world.blind}", limit=4)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "detect" and body["split"] == "val"
    assert [j["id"] for j in body["jobs"]] == [world.perfect, world.blind]
    assert body["total"] == body["stored"] == VAL_IMAGES
    assert [r["path"] for r in body["rows"]] == world.val_paths[:4]
    first = body["rows"][0]
    assert [m["job_id"] for m in first["models"]] == [world.perfect, world.blind]
    assert {b["kind"] for b in first["truth"]} == {"truth"}
    assert {b["kind"] for b in first["models"][0]["boxes"]} == {"tp"}  # found everything
    assert {b["kind"] for b in first["models"][1]["boxes"]} == {"missed"}  # image 0: blind
    thumbnail = httpx.get(first["thumbnail_url"], timeout=30)
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"].startswith("image/")

    # The page's own loader, for the same viewer, draws the same images with the same verdicts.
    with session_scope() as session:
        token = tokens.issue_session(session, user=session.get(User, world.cast.users["viewer"]))
    page = load_page(token, world.cast.project_id, [world.perfect, world.blind], "val", {}, 0)
    assert page["total"] == body["total"]
    assert [r["path"] for r in page["rows"]][:4] == [r["path"] for r in body["rows"]]
    assert [c["caption"] for c in page["rows"][0]["cells"][1:]] == [m["caption"] for m in first["models"]]


def test_filters_and_paging_follow_the_query(world: World) -> None:
    ids = f"{world.perfect},{world.blind}"
    wrong = world.get("viewer", jobs=ids, wrong_in=world.blind).json()
    assert [r["path"] for r in wrong["rows"]] == world.val_paths[0::2]
    assert world.get("viewer", jobs=ids, wrong_in=world.perfect).json()["total"] == 0
    assert world.get("viewer", jobs=ids, disagree=True).json()["total"] == len(world.val_paths[0::2])
    second = world.get("viewer", jobs=ids, offset=4, limit=4).json()
    assert [r["path"] for r in second["rows"]] == world.val_paths[4:]


@pytest.mark.parametrize(
    ("part", "status"),
    [("owner", 200), ("admin", 200), ("member", 200), ("outsider", 404), ("anonymous", 401)],
)
def test_who_may_read(world: World, part: str, status: int) -> None:
    assert world.get(part, jobs=f"{world.perfect},{world.blind}").status_code == status


def test_bad_job_ids_get_a_clear_4xx(world: World) -> None:
    def refused(status: int, words: str, **params: Any) -> None:
        response = world.get("viewer", **params)
        assert response.status_code == status, response.text
        assert words in response.text, response.text

    ok = world.perfect
    refused(422, "'abc' is not a job id", jobs=f"{ok},abc")
    refused(422, "'-3' is not a job id", jobs=f"{ok},-3")
    refused(422, "is not a job id", jobs=f"{ok},{2**64}")
    refused(422, "pick 2 to 4 different jobs", jobs=str(ok))
    refused(422, "pick 2 to 4 different jobs", jobs=f"{ok},{ok}")
    refused(404, "Job 999999 does not exist in this project", jobs=f"{ok},999999")
    refused(404, f"Job {world.elsewhere} does not exist in this project", jobs=f"{ok},{world.elsewhere}")
    refused(422, "only succeeded jobs have predictions", jobs=f"{ok},{world.queued}")
    refused(
        422,
        "'wrong in' must name one of the compared jobs",
        jobs=f"{ok},{world.blind}",
        wrong_in=world.queued,
    )
    refused(422, "unknown class 'zebra'", jobs=f"{ok},{world.blind}", class_name="zebra")
    refused(422, "stored no predictions for the test split", jobs=f"{ok},{world.blind}", split="test")
    assert world.get("viewer").status_code == 422  # `jobs` is required


def _cell(
    world: World, part: str, job_id: int, project_id: int | None = None, **params: Any
) -> httpx.Response:
    project = world.cast.project_id if project_id is None else project_id
    return world.client.get(
        f"/api/v1/projects/{project}/jobs/{job_id}/confusion", params=params, headers=world.cast.bearer(part)
    )


def test_confusion_cell_lists_the_images_behind_it(world: World) -> None:
    """What clicking a confusion-matrix cell on the job page lists, over REST: the blind job's
    missed objects are exactly on the val images it predicted nothing for."""
    manifest_classes = world.get("viewer", jobs=f"{world.perfect},{world.blind}").json()["classes"]
    missed: set[str] = set()
    for name in manifest_classes:
        body = _cell(world, "viewer", world.blind, true=name, predicted="background", limit=100).json()
        assert body["jobs"] == [{"id": world.blind, "name": body["jobs"][0]["name"], "model": "yolo11n.yaml"}]
        assert body["total"] == len(body["rows"])
        for row in body["rows"]:
            assert {b["kind"] for b in row["models"][0]["boxes"]} == {"missed"}
            missed.add(row["path"])
    assert missed == set(world.val_paths[0::2])
    # The perfect job missed nothing, and predicted each class only as itself.
    for name in manifest_classes:
        assert _cell(world, "viewer", world.perfect, true=name, predicted="background").json()["total"] == 0
        hits = _cell(world, "viewer", world.perfect, true=name, predicted=name, limit=1).json()
        assert hits["limit"] == 1 and len(hits["rows"]) <= 1
    first = manifest_classes[0]
    paged = _cell(world, "viewer", world.blind, true=first, predicted="background", offset=1, limit=1).json()
    assert paged["offset"] == 1 and len(paged["rows"]) == min(1, max(0, paged["total"] - 1))


def test_confusion_cell_refuses_bad_input_and_outsiders(world: World) -> None:
    name = world.get("viewer", jobs=f"{world.perfect},{world.blind}").json()["classes"][0]
    cell = {"true": name, "predicted": "background"}
    unknown = _cell(world, "viewer", world.blind, true="zebra", predicted="background")
    assert unknown.status_code == 422 and "unknown class 'zebra'" in unknown.text, unknown.text
    no_test = _cell(world, "viewer", world.blind, split="test", **cell)
    assert no_test.status_code == 422 and "stored no predictions for the test split" in no_test.text
    assert _cell(world, "viewer", world.blind, true=name).status_code == 422  # `predicted` is required
    assert _cell(world, "outsider", world.blind, **cell).status_code == 404
    assert _cell(world, "anonymous", world.blind, **cell).status_code == 401
    # A job is reached through its own project's address only.
    foreign = _cell(world, "owner", world.elsewhere, **cell)
    assert foreign.status_code == 404 and f"Job {world.elsewhere} does not exist" in foreign.text
