"""Saved comparisons: a member saves a selection and view; another member opens it with the same runs
and view; anyone outside the project gets 404. The CSV holds every epoch the chart downsamples."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from services.domain.models import Job, JobMetric
from services.infra.db import session_scope
from tests.security.conftest import Cast
from tests.utils.rows import dataset_version_row

pytestmark = [pytest.mark.security, pytest.mark.usefixtures("backend")]


def _runs(cast: Cast, count: int, epochs: int) -> list[int]:
    with session_scope() as session:
        version = dataset_version_row(session, project_id=cast.project_id, created_by=cast.users["owner"])
        ids = []
        for i in range(count):
            job = Job(
                project_id=cast.project_id,
                dataset_version_id=version.id,
                created_by=cast.users["member"],
                name=f"r{i}",
                framework="ultralytics",
                task="detect",
                model="yolo11n.yaml",
                hyperparameters={"lr0": 0.01 * (i + 1), "epochs": epochs},
                state="succeeded",
                callback_secret=uuid.uuid4().hex,
            )
            session.add(job)
            session.flush()
            assert job.id is not None
            ids.append(job.id)
            for epoch in range(epochs):
                session.add(
                    JobMetric(job_id=job.id, epoch=epoch, metrics={"map50": epoch / epochs, "loss": 1.0})
                )
        return ids


def test_a_saved_comparison_is_shared_with_members_only(client: TestClient, cast: Cast) -> None:
    ids = _runs(cast, 3, 5)
    base = f"/api/v1/projects/{cast.project_id}"
    body = {"name": "lr sweep", "job_ids": ids, "metric": "map50", "only_differences": False}
    saved = client.post(f"{base}/comparisons", json=body, headers=cast.bearer("member"))
    assert saved.status_code == 201, saved.text
    view_id = saved.json()["id"]

    opened = client.get(f"{base}/comparisons/{view_id}", headers=cast.bearer("viewer"))
    assert opened.status_code == 200
    assert {k: opened.json()[k] for k in ("name", "job_ids", "metric", "only_differences")} == {
        "name": "lr sweep",
        "job_ids": sorted(ids),
        "metric": "map50",
        "only_differences": False,
    }
    outsider = client.get(f"{base}/comparisons/{view_id}", headers=cast.bearer("outsider"))
    assert outsider.status_code == 404
    elsewhere = client.get(
        f"/api/v1/projects/{cast.other_project_id}/comparisons/{view_id}", headers=cast.bearer("outsider")
    )
    assert elsewhere.status_code == 404, "not visible through a project the caller is in either"

    foreign = client.post(
        f"/api/v1/projects/{cast.other_project_id}/comparisons",
        json={"name": "x", "job_ids": ids},
        headers=cast.bearer("outsider"),
    )
    assert foreign.status_code == 422 and "no such runs" in foreign.json()["detail"]


def test_the_csv_holds_every_epoch(client: TestClient, cast: Cast) -> None:
    ids = _runs(cast, 2, 700)
    response = client.get(
        f"/api/v1/projects/{cast.project_id}/compare.csv",
        params={"ids": ",".join(map(str, ids))},
        headers=cast.bearer("viewer"),
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    lines = response.text.strip().splitlines()
    assert lines[0].split(",")[:3] == ["job_id", "run", "epoch"]
    assert len(lines) == 1 + 2 * 700
