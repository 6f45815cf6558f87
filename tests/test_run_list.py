"""The compare page's run list is filtered, sorted and paged by the database."""

from __future__ import annotations

import math
import uuid

import pytest
from sqlalchemy import event
from sqlmodel import select

from services.domain import auth, experiments, jobs, projects
from services.domain.models import Job
from services.errors import InvalidInput
from services.infra.db import get_engine, session_scope
from tests.utils.rows import dataset_version_row

pytestmark = [pytest.mark.usefixtures("backend")]


def _project_with_runs(count: int) -> int:
    with session_scope() as session:
        user = auth.create_user(
            session, username=f"runs-{uuid.uuid4().hex[:8]}", password="a-long-password-1"
        )
        project = projects.create_project(session, owner=user, name="runs")
        version = dataset_version_row(session, project_id=project.id, created_by=user.id)
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
                    hyperparameters={"lr0": 0.001 * (i % 10 + 1), "optimizer": "SGD" if i % 2 else "AdamW"},
                    # Every fifth run never reported an epoch.
                    final_metrics={} if i % 5 == 0 else {"map50_95": i / 200},
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


def test_filters_by_parameter_final_metric_tag_and_dataset_in_the_database() -> None:
    project_id = _project_with_runs(100)
    with session_scope() as session:
        big_lr = "params.lr0>=0.009"
        rows, total = experiments.list_runs(session, project_id=project_id, search=big_lr, limit=99)
        # lr0 = 0.001 * (i % 10 + 1) >= 0.009 for i % 10 in (8, 9)
        assert total == 20 and {int(r["name"][4:]) % 10 for r in rows} == {8, 9}
        rows, total = experiments.list_runs(
            session, project_id=project_id, search="params.optimizer=SGD metrics.map50_95>0.4", limit=500
        )
        expected = [i for i in range(100) if i % 2 and i % 5 and i / 200 > 0.4]
        assert total == len(expected) and sorted(int(r["name"][4:]) for r in rows) == expected
        # Sorted by a final metric, best first; runs that never reported it come last.
        rows, total = experiments.list_runs(session, project_id=project_id, sort="metric:map50_95", limit=500)
        values = [r["final_metrics"].get("map50_95") for r in rows]
        assert values[0] == 99 / 200 and values[-20:] == [None] * 20
        assert all(a >= b for a, b in zip(values[:80], values[1:80], strict=False))

        first, second = (r["id"] for r in rows[:2])
        experiments.set_tags(session, session.get(Job, first), ["baseline", "paper"])
        experiments.set_tags(session, session.get(Job, second), ["baseline"])
        rows, total = experiments.list_runs(session, project_id=project_id, search="tag:baseline", limit=500)
        assert total == 2 and rows[0]["tags"] in (["baseline"], ["baseline", "paper"])
        rows, total = experiments.list_runs(session, project_id=project_id, search="tag:paper", limit=500)
        assert total == 1 and rows[0]["id"] == first and rows[0]["tags"] == ["baseline", "paper"]
        version = rows[0]["dataset_version_id"]
        _rows, total = experiments.list_runs(session, project_id=project_id, search=f"dataset:{version}")
        assert total == 100
        other = f"dataset:{version + 999}"
        _rows, total = experiments.list_runs(session, project_id=project_id, search=other)
        assert total == 0


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("metrics.map50_95", "needs a comparison"),
        ("params.lr0>", "needs a value"),
        ("params.optimizer>SGD", "compares numbers"),
        ("metrics.map50_95=high", "metrics are numbers"),
        ("dataset:first", "dataset version's number"),
        ("tag:<b>", "a tag is"),
    ],
)
def test_a_bad_filter_says_what_to_write(query: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        experiments.parse_run_query(query)


def test_tags_are_checked_and_replaced() -> None:
    project_id = _project_with_runs(1)
    with session_scope() as session:
        job = session.exec(select(Job).where(Job.project_id == project_id)).one()
        assert experiments.set_tags(session, job, [" b ", "a", "b"]) == ["a", "b"]
        assert experiments.set_tags(session, job, ["c"]) == ["c"]
        assert experiments.tags_of(session, [job.id]) == {job.id: ["c"]}
        with pytest.raises(InvalidInput, match="a tag is"):
            experiments.set_tags(session, job, ["has space inside? no: too/odd"])


@pytest.mark.postgres
def test_the_same_filters_on_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    """JSON comparisons and NULLS LAST compile differently there: run them (and the migration) for real."""
    from services.runtime.cli import migrate
    from tests.conftest import reset_caches
    from tests.utils import servers

    with servers.postgres() as url:
        monkeypatch.setenv("VTP_DATABASE_URL", url)
        reset_caches()
        try:
            migrate()
            test_filters_by_parameter_final_metric_tag_and_dataset_in_the_database()
        finally:
            monkeypatch.delenv("VTP_DATABASE_URL")
            reset_caches()


def test_a_diverged_run_with_nan_metrics_still_lists() -> None:
    """JSON columns are decoded by orjson, which refuses NaN; a run whose loss diverged stored NaN
    (the standard library writes it) and must still list, with NaN read back."""
    pid = _project_with_runs(1)
    with session_scope() as session:
        job = session.exec(select(Job).where(Job.project_id == pid)).one()
        job.final_metrics = {"val_loss": float("nan"), "map50_95": 0.5}
        session.add(job)
    with session_scope() as session:
        (row,) = jobs.filter_jobs(session, project_id=pid)
    assert math.isnan(row["final_metrics"]["val_loss"]) and row["final_metrics"]["map50_95"] == 0.5
