"""The compare page's run list is filtered, sorted and paged by the database."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event

from services.domain import auth, experiments, projects
from services.domain.models import Dataset, DatasetVersion, Job
from services.infra.db import get_engine, session_scope

pytestmark = [pytest.mark.usefixtures("backend")]


def _project_with_runs(count: int) -> int:
    with session_scope() as session:
        user = auth.create_user(
            session, username=f"runs-{uuid.uuid4().hex[:8]}", password="a-long-password-1"
        )
        project = projects.create_project(session, owner=user, name="runs")
        dataset = Dataset(project_id=project.id, name="d", created_by=user.id)
        session.add(dataset)
        session.flush()
        version = DatasetVersion(
            dataset_id=dataset.id, version=1, format="yolo", task="detect", uri="s3://b/k/"
        )
        session.add(version)
        session.flush()
        for i in range(count):
            session.add(
                Job(
                    project_id=project.id,
                    dataset_version_id=version.id,
                    created_by=user.id,
                    name=f"run {i:04d}",
                    framework="ultralytics",
                    task="detect",
                    model="yolo11s.yaml" if i % 3 == 0 else "yolo11n.yaml",
                    state="succeeded" if i % 2 else "failed",
                    callback_secret="s",
                )
            )
        assert project.id is not None
        return project.id


def _queries(call):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def count(*_args: object) -> None:
        seen.append("q")

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        result = call()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return result, len(seen)


def test_pages_filters_and_sorts_in_the_database() -> None:
    project_id = _project_with_runs(120)
    with session_scope() as session:
        (rows, total), queries = _queries(
            lambda: experiments.list_runs(session, project_id=project_id, offset=25, limit=25)
        )
        assert total == 120 and len(rows) == 25
        assert rows[0]["name"] == "run 0094", "newest first, second page"
        assert queries <= 3, "a count and a page, whatever the size"
        rows, total = experiments.list_runs(
            session, project_id=project_id, states=["failed"], sort="name", limit=5
        )
        assert total == 60 and [r["name"] for r in rows] == [f"run {i:04d}" for i in (0, 2, 4, 6, 8)]
        rows, total = experiments.list_runs(session, project_id=project_id, search="yolo11s", limit=500)
        assert total == 40 and all(r["model"] == "yolo11s.yaml" for r in rows)
        rows, total = experiments.list_runs(session, project_id=project_id, offset=5000)
        assert total == 120 and rows == []
